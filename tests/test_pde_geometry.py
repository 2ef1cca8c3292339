"""Samplers, geometries and hard Dirichlet constraints of ``lightning_kan.pde``."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from lightning_kan.nets import KAN
from lightning_kan.pde import (
    SAMPLERS,
    Box,
    Burgers,
    Difference,
    Ellipsoid,
    Elliptic,
    HardDirichlet,
    Intersection,
    PDEDataModule,
    PINNTask,
    Polygon,
    SteadyAllenCahn,
    TimeAllenCahn,
    Union,
    get_sampler,
)
from lightning_kan.pde.geometry import allocate

F64 = torch.float64
L_SHAPE = [[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]]  # edge lengths 2, 1, 1, 1, 1, 2
GEOMETRIES = {
    "box": Box(((0.0, 2.0), (-1.0, 1.0))),
    "space-time box": Box(((-1.0, 1.0), (0.0, 1.0)), time_dims=(1,)),
    "box3": Box(((0.0, 1.0), (0.0, 2.0), (-1.0, 0.0)), face_choice="uniform"),
    "disk": Ellipsoid((0.0, 0.0), 1.0),
    "ellipse": Ellipsoid((0.5, 0.0), (2.0, 0.5)),
    "ellipsoid3": Ellipsoid((0.0, 0.0, 0.0), (1.0, 2.0, 0.5)),
    "L-polygon": Polygon(L_SHAPE),
    "union": Box(((0.0, 1.0), (0.0, 1.0))) | Ellipsoid((1.0, 1.0), 0.5),
    "intersection": Intersection(Box(((0.0, 1.0), (0.0, 1.0))), Ellipsoid((1.0, 1.0), 0.6)),
    "difference": Box(((-1.0, 1.0), (-1.0, 1.0))) - Ellipsoid((0.0, 0.0), 0.5),
    "nested": Difference(Polygon(L_SHAPE) | Ellipsoid((2.0, 2.0), 0.8), Ellipsoid((0.5, 0.5), 0.2)),
}


def _counts(geometry, sampler):
    """Counts every sampler accepts (tensor grids need m ** d on a box)."""
    if sampler in ("grid", "chebyshev") and geometry.dim == 3:
        return 64, 96  # 4^3 inside; a 3-D box's 6 faces get 16 = 4^2 each
    return 100, 90


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("name", GEOMETRIES)
def test_points_are_inside_and_exactly_on_the_boundary(name, sampler):
    geometry = GEOMETRIES[name]
    interior_count, boundary_count = _counts(geometry, sampler)
    interior = geometry.sample_interior(interior_count, sampler, seed=3, dtype=F64)
    boundary = geometry.sample_boundary(boundary_count, sampler, seed=3, dtype=F64)
    assert interior.shape == (interior_count, geometry.dim) and interior.dtype == F64
    assert boundary.shape == (boundary_count, geometry.dim)
    assert geometry.contains(interior).all()
    assert geometry.distance(boundary).abs().max() <= 1e-12
    assert geometry.contains(boundary, tol=1e-12).all()
    low = torch.tensor([lo for lo, _ in geometry.bounds], dtype=F64)
    high = torch.tensor([hi for _, hi in geometry.bounds], dtype=F64)
    assert ((boundary >= low - 1e-12) & (boundary <= high + 1e-12)).all()


def test_box_boundary_excludes_the_final_time_and_covers_the_other_faces():
    box = GEOMETRIES["space-time box"]
    points = box.sample_boundary(3000, "random", seed=0, dtype=F64)
    assert not (points[:, 1] == 1.0).any()
    on_face = [points[:, 0] == -1, points[:, 0] == 1, points[:, 1] == 0]
    assert (on_face[0] | on_face[1] | on_face[2]).all()
    # area weighting: faces of length 1, 1 and 2 get 1/4, 1/4, 1/2 (4 sigma of binomial)
    for mask, share in zip(on_face, (0.25, 0.25, 0.5), strict=True):
        assert abs(mask.double().mean() - share) < 4 * math.sqrt(share * (1 - share) / 3000)
    grid = box.sample_boundary(40, "grid", dtype=F64)  # exact shares 10, 10, 20
    assert [int(m.sum()) for m in (grid[:, 0] == -1, grid[:, 0] == 1, grid[:, 1] == 0)] == [
        10,
        10,
        20,
    ]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_initial_points_lie_on_the_initial_face(sampler):
    box = Box(((-1.0, 1.0), (0.0, 2.0), (0.0, 1.0)), time_dims=(2,))
    points = box.sample_initial(16, sampler, seed=0, dtype=F64)
    assert points.shape == (16, 3) and (points[:, 2] == 0).all()
    assert box.contains(points).all() and box.on_boundary(points).all()
    assert points[:, :2].unique(dim=0).shape[0] == 16


@pytest.mark.parametrize("sampler", ["latin", "sobol", "halton", "random"])
def test_stochastic_samplers_are_reproducible_per_seed(sampler):
    geometry = GEOMETRIES["difference"]
    torch.manual_seed(123)
    first = geometry.sample_interior(50, sampler, seed=7, dtype=F64)
    after = torch.rand(3)
    torch.manual_seed(456)  # another global state (another DDP rank): same points
    again = geometry.sample_interior(50, sampler, seed=7, dtype=F64)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    other = geometry.sample_interior(50, sampler, seed=8, dtype=F64)
    assert not torch.allclose(first, other)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # the global generator was not used
    boundary = geometry.sample_boundary(40, sampler, seed=7, dtype=F64)
    torch.testing.assert_close(boundary, geometry.sample_boundary(40, sampler, seed=7, dtype=F64))


def test_latin_hypercube_has_one_point_per_stratum_on_every_axis():
    generator = torch.Generator().manual_seed(0)
    for count, dim in [(17, 2), (50, 3)]:
        points = get_sampler("latin").unit(count, dim, generator, F64)
        strata = (points * count).floor().long()
        for axis in range(dim):
            assert sorted(strata[:, axis].tolist()) == list(range(count))
    box = Box(((-1.0, 3.0), (0.0, 0.5)))
    points = box.sample_interior(20, "latin", seed=1, dtype=F64)
    strata = (points - torch.tensor([-1.0, 0.0], dtype=F64)) / torch.tensor([4.0, 0.5], dtype=F64)
    for axis in range(2):
        assert sorted((strata[:, axis] * 20).floor().long().tolist()) == list(range(20))


def test_chebyshev_nodes_are_the_closed_form():
    n, (a, b) = 7, (-1.0, 3.0)
    k = torch.arange(1, n + 1, dtype=F64)
    nodes = a + (b - a) * (1 + torch.cos((2 * k - 1) * math.pi / (2 * n))) / 2
    points = Box(((a, b),)).sample_interior(n, "chebyshev", dtype=F64)[:, 0]
    torch.testing.assert_close(points, nodes.sort().values, rtol=0, atol=1e-15)
    square = Box(((a, b), (0.0, 1.0))).sample_interior(n * n, "chebyshev", dtype=F64)
    unit_nodes = (1 + torch.cos((2 * k - 1) * math.pi / (2 * n))) / 2
    expected = torch.cartesian_prod(nodes.sort().values, unit_nodes.sort().values)
    torch.testing.assert_close(square, expected, rtol=0, atol=1e-15)
    grid = Box(((0.0, 1.0),)).sample_interior(4, "grid", dtype=F64)[:, 0]
    assert grid.tolist() == [0.125, 0.375, 0.625, 0.875]


def _edge_of(polygon: Polygon, points: torch.Tensor) -> torch.Tensor:
    """Index of the edge each point lies on (to 1e-12), asserting there is exactly one."""
    start = torch.tensor(polygon.vertices, dtype=F64)
    end = torch.roll(start, -1, dims=0)
    edge = end - start
    offset = points[:, None, :] - start
    t = ((offset * edge).sum(-1) / (edge * edge).sum(-1)).clamp(0, 1)
    on = (offset - t[..., None] * edge).norm(dim=-1) <= 1e-12
    assert (on.sum(dim=1) == 1).all()
    return on.double().argmax(dim=1)


def test_polygon_boundary_points_per_edge_follow_edge_length():
    polygon = Polygon(L_SHAPE)
    lengths = [2, 1, 1, 1, 1, 2]
    grid = _edge_of(polygon, polygon.sample_boundary(80, "grid", dtype=F64))
    assert torch.bincount(grid, minlength=6).tolist() == [10 * n for n in lengths]
    count = 8000
    edges = _edge_of(polygon, polygon.sample_boundary(count, "random", seed=2, dtype=F64))
    for observed, length in zip(torch.bincount(edges, minlength=6).tolist(), lengths, strict=True):
        share = length / 8
        assert abs(observed - count * share) < 4 * math.sqrt(count * share * (1 - share))


def test_polygon_area_and_contains():
    polygon = Polygon(L_SHAPE)
    assert polygon.area == 3.0 and polygon.boundary_measure == 8.0
    points = torch.tensor([[0.5, 0.5], [1.5, 1.5], [1.5, 0.5], [0.5, 1.9], [-0.1, 0.5]], dtype=F64)
    assert polygon.contains(points).tolist() == [True, False, True, True, False]
    distance = polygon.distance(points)
    torch.testing.assert_close(distance, torch.tensor([0.5, -0.5, 0.5, 0.1, -0.1], dtype=F64))


def test_ellipse_boundary_is_uniform_in_arc_length():
    ellipse = Ellipsoid((0.0, 0.0), (2.0, 0.5))
    theta = torch.linspace(0, 2 * math.pi, 200_001, dtype=F64)
    speed = torch.hypot(2 * torch.sin(theta), 0.5 * torch.cos(theta))
    share = float((speed * (torch.cos(theta) > 0.5)).sum() / speed.sum())  # arc with x > 1
    assert abs(ellipse.boundary_measure - float(torch.trapezoid(speed, theta))) < 1e-6
    count = 20000
    points = ellipse.sample_boundary(count, "random", seed=0, dtype=F64)
    observed = float((points[:, 0] > 1).double().mean())
    assert abs(observed - share) < 4 * math.sqrt(share * (1 - share) / count)
    assert abs(share - 1 / 3) > 0.05  # uniform angles would give 1/3: the test can fail


def test_set_operation_boundaries_lie_on_exactly_one_operand():
    square, disk = Box(((-1.0, 1.0), (-1.0, 1.0))), Ellipsoid((1.0, 1.0), 0.5)
    for geometry, kept_on_first, kept_on_second in [
        (Union(square, disk), lambda x: ~disk.contains(x), lambda x: ~square.contains(x)),
        (Difference(square, disk), lambda x: ~disk.contains(x), lambda x: square.contains(x)),
        (Intersection(square, disk), lambda x: disk.contains(x), lambda x: square.contains(x)),
    ]:
        points = geometry.sample_boundary(2000, "random", seed=0, dtype=F64)
        on_first, on_second = square.on_boundary(points), disk.on_boundary(points)
        assert (on_first ^ on_second).all()
        assert kept_on_first(points[on_first]).all() and kept_on_second(points[on_second]).all()
    # square minus a centred disk: both parts, in proportion to their lengths
    hole = Difference(square, Ellipsoid((0.0, 0.0), 0.5))
    points = hole.sample_boundary(4000, "sobol", seed=1, dtype=F64)
    share = math.pi / (8 + math.pi)  # the circle of radius 1/2 is pi long
    observed = float((points.norm(dim=1) < 0.75).double().mean())
    assert abs(observed - share) < 4 * math.sqrt(share * (1 - share) / 4000)
    assert abs(hole.boundary_measure - (8 + math.pi)) < 0.03 * (8 + math.pi)
    # nested: two touching boxes (their shared edge is inside) minus a disk
    bar = Union(Box(((0.0, 2.0), (0.0, 1.0))), Box(((2.0, 3.0), (0.0, 1.0))))
    nested = Difference(bar, Ellipsoid((1.0, 0.5), 0.25))
    points = nested.sample_boundary(8000, "random", seed=2, dtype=F64)
    assert not ((points[:, 0] == 2.0) & (points[:, 1] > 0) & (points[:, 1] < 1)).any()
    share = (math.pi / 2) / (8 + math.pi / 2)  # circle 2 pi / 4 against the 3 x 1 frame
    on_circle = (points - torch.tensor([1.0, 0.5], dtype=F64)).norm(dim=1) < 0.3
    observed = float(on_circle.double().mean())
    assert abs(observed - share) < 4 * math.sqrt(share * (1 - share) / 8000)
    interior = hole.sample_interior(500, "halton", seed=0, dtype=F64)
    assert (interior.norm(dim=1) >= 0.5).all() and (interior.abs() <= 1).all()


def test_allocate_is_largest_remainder():
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(7, [2.0, 1.0, 1.0]) == [3, 2, 2]  # shares 3.5, 1.75, 1.75
    assert sum(allocate(101, [0.3, 0.2, 0.5])) == 101


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: get_sampler("sobl"), r"sampler must be one of .* 'sobl'; did you mean 'sobol'"),
        (lambda: Box(((0, 1),)).sample_interior(0), r"count must be a positive integer .* got 0"),
        (lambda: Box(((0, 1),)).sample_interior(2.5), r"got 2\.5"),
        (lambda: Box(((0, 1),)).sample_boundary(True), r"got True"),
        (
            lambda: Box(((0, 1), (0, 1))).sample_interior(90, "grid"),
            r"grid sampler needs count = m \*\* 2 .* got 90; use e\.g\. 81 or 100",
        ),
        (
            lambda: Box(((0, 1), (0, 2), (0, 1))).sample_boundary(96, "grid"),
            r"puts 19 points on the face x_0 = 0\.0 .* face_choice='uniform'",
        ),
        (lambda: Box(((0, 1),)).sample_initial(4), r"has no initial face: .* time_dims"),
        (
            lambda: Difference(Box(((0, 1), (0, 1))), Box(((0, 1), (0, 1)))).sample_interior(5),
            r"random sampling kept 0 of the 5 points asked for from \d+ candidates",
        ),
        (
            lambda: Difference(Box(((0, 1),)), Box(((0, 1),))).sample_interior(5, "grid"),
            r"grid sampling found only 0 of the 5 points",
        ),
        (lambda: Box(((1, 0),)), r"bounds must be \(\(low, high\), \.\.\.\) .* low < high"),
        (lambda: Box(((0, 1),), time_dims=(3,)), r"time_dims must list coordinates 0\.\.0"),
        (lambda: Ellipsoid((0, 0), (1.0, -1.0)), r"positive radii"),
        (lambda: Polygon([[0, 0], [1, 1], [1, 0], [0, 1]]), r"simple polygon"),
        (lambda: Polygon([[0, 0], [1, 0]]), r"3 or more \(x, y\) pairs"),
        (lambda: Union(Box(((0, 1),)), Ellipsoid((0, 0), 1.0)), r"operands of one dimension"),
        (lambda: Intersection(Box(((0, 1),)), Box(((2, 3),))), r"is empty"),
        (lambda: Elliptic(domain=Box(((0, 1),))), r"domain must be .* of dimension 2"),
        (lambda: Box(((0, 1),)).sample_interior(3, seed="a"), r"seed must be an int"),
        (
            lambda: HardDirichlet(KAN([2, 1]), Elliptic(domain=Ellipsoid((0, 0), 1.0))),
            r"no default boundary lift .* pass HardDirichlet\(\.\.\., lift=\.\.\.\)",
        ),
        (lambda: PDEDataModule(Elliptic(), sampler="lattin"), r"did you mean 'latin'"),
        (
            lambda: PDEDataModule(Elliptic(), num_interior=1000, sampler="grid"),
            r"count = m \*\* 2 .* got 1000; use e\.g\. 961 or 1024",
        ),
    ],
)
def test_bad_input_is_one_clear_paragraph(call, match):
    with pytest.raises(ValueError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


# --- the default data is what the code drew before geometries existed ------------------


def _legacy_interior(problem, count, generator):
    """The sampler of lightning_kan before geometries (copied from the old PDEProblem)."""
    low = torch.tensor([lo for lo, _ in problem.bounds])
    high = torch.tensor([hi for _, hi in problem.bounds])
    return low + (high - low) * torch.rand(count, problem.dim, generator=generator)


def _legacy_boundary(problem, count, generator):
    low = torch.tensor([lo for lo, _ in problem.bounds])
    high = torch.tensor([hi for _, hi in problem.bounds])
    points = low + (high - low) * torch.rand(count, problem.dim, generator=generator)
    faces = [
        (d, side)
        for d in range(problem.dim)
        for side in (0, 1)
        if not (d in problem.time_dims and side == 1)
    ]
    choice = torch.randint(len(faces), (count,), generator=generator)
    for index, (d, side) in enumerate(faces):
        points[choice == index, d] = (high if side else low)[d]
    return points


@pytest.mark.parametrize("problem", [Elliptic(), Burgers(), SteadyAllenCahn()], ids=repr)
def test_default_box_data_is_bit_identical_to_before(problem):
    data = PDEDataModule(problem, num_interior=37, num_boundary=23, steps_per_epoch=2, seed=4)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(3)
    for index, batch in zip(range(6, 8), loader, strict=True):
        generator = torch.Generator().manual_seed(4 * 1_000_003 + index)
        interior = _legacy_interior(problem, 37, generator)
        boundary = _legacy_boundary(problem, 23, generator)
        assert torch.equal(batch["interior"], interior) and batch["interior"].dtype == torch.float32
        assert torch.equal(batch["boundary"], boundary)
    assert problem.test_grid(5).shape == (25, 2)


def test_data_module_sampler_option_and_domain():
    disk = Ellipsoid((0.5, 0.5), 0.5)
    data = PDEDataModule(
        Elliptic(domain=disk), num_interior=64, num_boundary=32, steps_per_epoch=2, sampler="sobol"
    )
    first, second = list(data.train_dataloader())
    again = next(iter(data.train_dataloader()))
    assert torch.equal(first["interior"], again["interior"])
    assert not torch.equal(first["interior"], second["interior"])
    assert disk.contains(first["interior"].double()).all()
    assert disk.on_boundary(first["boundary"].double(), tol=1e-6).all()
    grid = data.problem.test_grid(21)
    assert disk.contains(grid).all() and 0.7 < grid.shape[0] / 441 < math.pi / 4 + 0.05


# --- hard constraints -----------------------------------------------------------------


def _kan() -> KAN:
    return KAN([2, 5, 1], basis="chebyshev", basis_kwargs={"degree": 4}).double()


def test_box_distance_and_hard_constraint_factor_closed_forms():
    box = Box(((-1.0, 2.0), (0.0, 1.0)), time_dims=(1,))
    x = torch.tensor([[0.0, 0.5], [1.5, 0.25], [3.0, 0.5], [0.5, 1.0]], dtype=F64)
    slab = (x[:, 0] + 1) * (2 - x[:, 0]) / 3
    t = x[:, 1]  # time: only the initial face
    torch.testing.assert_close(box.boundary_factor(x), slab * t, rtol=0, atol=1e-15)
    rvachev = slab + t - torch.sqrt(slab**2 + t**2)
    torch.testing.assert_close(box.distance(x), rvachev, rtol=0, atol=1e-15)
    assert box.contains(x).tolist() == [True, True, False, True]
    assert box.on_boundary(x).tolist() == [False, False, False, False]  # t = 1 is open
    problem = Elliptic()
    points = problem.domain.sample_interior(50, seed=0, dtype=F64)
    expected = points[:, :1] * (1 - points[:, :1]) * points[:, 1:] * (1 - points[:, 1:])
    torch.testing.assert_close(problem.boundary_distance(points), expected, rtol=0, atol=1e-15)


def test_transfinite_lift_reproduces_sums_of_one_dimensional_functions():
    box = Box(((-1.0, 2.0), (0.0, 1.0)))

    def values(x):
        return torch.sin(3 * x[:, :1]) + x[:, 1:2] ** 3 + x[:, :1] * x[:, 1:2]

    x = box.sample_interior(200, seed=0, dtype=F64)
    torch.testing.assert_close(box.transfinite(values, x), values(x), rtol=0, atol=1e-12)
    wrong = torch.sin(3 * x[:, :1]) * torch.cos(4 * x[:, 1:2])  # not reproduced inside
    lift = box.transfinite(lambda p: torch.sin(3 * p[:, :1]) * torch.cos(4 * p[:, 1:2]), x)
    assert (lift - wrong).abs().max() > 1e-2


@pytest.mark.parametrize(
    "problem, lift",
    [
        (SteadyAllenCahn(eps=0.3), None),
        (TimeAllenCahn(eps=0.2), None),
        (Burgers(nu=0.1), None),
        (SteadyAllenCahn(eps=0.3, domain=Ellipsoid((0.0, 0.0), (1.0, 0.6))), "exact"),
        (SteadyAllenCahn(eps=0.3, domain=GEOMETRIES["difference"]), "exact"),
        (SteadyAllenCahn(eps=0.3, domain=Polygon([[-1, -1], [1, -1], [0, 1]])), "exact"),
    ],
    ids=repr,
)
def test_hard_dirichlet_holds_the_boundary_data_exactly(problem, lift):
    net = HardDirichlet(_kan(), problem, lift=problem.boundary_values if lift else None)
    boundary = problem.domain.sample_boundary(300, "halton", seed=0, dtype=F64)
    with torch.no_grad():
        error = (net(boundary) - problem.boundary_values(boundary)).abs().max()
        assert error <= 1e-12
        interior = problem.domain.sample_interior(300, seed=0, dtype=F64)
        assert (net(interior) - problem.boundary_values(interior)).abs().max() > 1e-3
    if problem.time_dims:  # the final time carries no data and is not held
        final = torch.tensor([[0.3, 1.0], [-0.4, 1.0]], dtype=F64)
        assert problem.boundary_distance(final).min() > 0


@pytest.mark.parametrize(
    "problem",
    [
        SteadyAllenCahn(eps=0.5),
        Burgers(nu=0.2),
        Elliptic(domain=Ellipsoid((0.5, 0.5), 0.5)),
        Elliptic(domain=GEOMETRIES["difference"]),
    ],
    ids=repr,
)
def test_hard_dirichlet_is_twice_differentiable(problem):
    lift = None if isinstance(problem.domain, Box) else problem.boundary_values
    net = HardDirichlet(_kan(), problem, lift=lift)
    x = problem.domain.sample_interior(6, seed=1, dtype=F64).requires_grad_(True)
    assert torch.autograd.gradcheck(net, (x,))
    assert torch.autograd.gradgradcheck(net, (x,))


def _pinn_loss(task, batch) -> float:
    batch = {key: value.clone() for key, value in batch.items()}
    return task.training_loss(batch, record=False).item()


def _fit(problem, net, sampler: str, steps: int = 30):
    data = PDEDataModule(
        problem,
        num_interior=128,
        num_boundary=64,
        steps_per_epoch=steps,
        resample=False,
        test_points_per_dim=11,
        sampler=sampler,
    )
    task = PINNTask(net, optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    task.problem = problem
    batch = next(iter(data.train_dataloader()))
    before = _pinn_loss(task, batch)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, data)
    (result,) = trainer.validate(task, data, verbose=False)
    return before, _pinn_loss(task, batch), batch, task, result


def test_pinn_fit_on_a_disk_lowers_the_loss():
    problem = Elliptic(p=1.0, domain=Ellipsoid((0.5, 0.5), 0.5))
    net = KAN([2, 6, 1], basis="chebyshev", basis_kwargs={"degree": 4})
    before, after, _, _, result = _fit(problem, net, "latin")
    assert after < 0.5 * before, (before, after)
    assert math.isfinite(result["val/rel_l2"])


def test_pinn_fit_with_hard_dirichlet_has_no_boundary_error():
    problem = Elliptic(p=1.0)
    net = HardDirichlet(KAN([2, 6, 1], basis="chebyshev", basis_kwargs={"degree": 4}), problem)
    before, after, batch, task, _ = _fit(problem, net, "sobol", steps=20)
    assert after < before, (before, after)
    boundary = batch["boundary"]
    with torch.no_grad():
        error = (task.net(boundary) - problem.boundary_values(boundary)).abs().max()
    assert error < 1e-6  # float32 round-off of sin(pi) on the faces x = 1, y = 1


def test_hard_dirichlet_takes_its_problem_late():
    problem = SteadyAllenCahn(eps=0.3)
    net = HardDirichlet(_kan())
    x = problem.domain.sample_boundary(20, seed=0, dtype=F64)
    with pytest.raises(ValueError, match=r"no problem to take its boundary_lift from"):
        net(x)
    net.bind_problem(problem)
    with torch.no_grad():
        torch.testing.assert_close(net(x), problem.boundary_values(x), rtol=0, atol=1e-12)
    assert set(net.state_dict()) == {f"net.{key}" for key in net.net.state_dict()}


def test_pinn_task_binds_its_problem_to_a_hard_dirichlet_net(tmp_path):
    """The task gives the data module's problem to a HardDirichlet built without one, so
    the boundary holds exactly with the data's domain (not a second copy in the config)."""
    problem = Elliptic(p=1.0)
    data = PDEDataModule(problem, num_interior=32, num_boundary=16, steps_per_epoch=2)
    task = PINNTask(HardDirichlet(_kan().float()))
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=data)
    assert task.net.problem is problem
    x = problem.domain.sample_boundary(20, seed=1).to(torch.float32)
    with torch.no_grad():
        error = (task.net(x) - problem.boundary_values(x)).abs().max()
    assert error < 1e-5


CONFIG = """
seed_everything: 0
trainer:
  accelerator: cpu
  max_epochs: 2
  enable_progress_bar: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args: {save_dir: runs, name: disk}
model:
  class_path: lightning_kan.pde.PINNTask
  init_args:
    net:
      class_path: lightning_kan.nets.KAN
      init_args: {widths: [6], basis: chebyshev, basis_kwargs: {degree: 3}}
data:
  class_path: lightning_kan.pde.PDEDataModule
  init_args:
    problem:
      class_path: lightning_kan.pde.Elliptic
      init_args:
        p: 1.0
        domain:
          class_path: lightning_kan.pde.Difference
          init_args:
            first: {class_path: lightning_kan.pde.Box, init_args: {bounds: [[0, 1], [0, 1]]}}
            second:
              class_path: lightning_kan.pde.Ellipsoid
              init_args: {center: [0.5, 0.5], radii: 0.2}
    num_interior: 64
    num_boundary: 32
    steps_per_epoch: 3
    test_points_per_dim: 11
    sampler: halton
"""


def test_cli_fit_on_a_domain_with_a_sampler(tmp_path, monkeypatch):
    from lightning_kan.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "disk.yaml").write_text(CONFIG)
    main(["fit", "--config", "disk.yaml"])
    run = tmp_path / "runs/disk/version_0"
    assert "val/rel_l2" in (run / "metrics.csv").read_text()
    assert "sampler: halton" in (run / "config.yaml").read_text()
