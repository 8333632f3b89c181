"""The shared training engine, driven by small purpose-built scorers."""

from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from anomvae.engine import NonFiniteLossError, TrainingEngine
from anomvae.scorer import Phase, Scorer


class TwoPlayerScorer(Scorer):
    """Two linear maps updated by alternating phases, like VAE-GAN or adVAE."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 3)
        self.second = nn.Linear(3, 3)
        self.epochs_started = []

    def optimizer_groups(self):
        return {"first": list(self.first.parameters()), "second": list(self.second.parameters())}

    def training_step(self, batch) -> Iterator[Phase]:
        yield Phase((self.second(self.first(batch)) - batch).pow(2).mean(), optimizer="first")
        yield Phase((self.second(self.first(batch)) - batch).pow(2).mean(), optimizer="second",
                    logs={"error": (self.second(self.first(batch)) - batch).pow(2).mean()})

    def validation_loss(self, batch):
        return (self.second(self.first(batch)) - batch).pow(2).mean()

    def on_epoch_start(self, epoch, batches):
        self.epochs_started.append((epoch, sum(len(b) for b in batches())))


def make_engine(**overrides):
    settings = dict(epochs=3, batch_size=16, learning_rate=1e-2, patience=None, gradient_clip=1.0,
                    generator=torch.Generator().manual_seed(0))
    settings.update(overrides)
    return TrainingEngine(**settings)


def test_each_phase_updates_only_its_own_group():
    scorer = TwoPlayerScorer()
    data = torch.randn(64, 3)
    phases = scorer.training_step(data[:16])
    second_before = [p.detach().clone() for p in scorer.second.parameters()]
    phase = next(phases)
    engine = make_engine()
    optimizers = {k: torch.optim.Adam(v, lr=0.1) for k, v in scorer.optimizer_groups().items()}
    phase.loss.backward()
    optimizers[phase.optimizer].step()
    for before, after in zip(second_before, scorer.second.parameters()):
        assert torch.equal(before, after)
    history = engine.fit(scorer, data)
    assert set(history) >= {"epoch", "loss_first", "loss_second", "error"}
    assert history["epoch"] == [1, 2, 3]


def test_alternating_training_reduces_the_loss_and_calls_epoch_hook():
    scorer = TwoPlayerScorer()
    data = torch.randn(256, 3)
    history = make_engine(epochs=30).fit(scorer, data)
    assert history["error"][-1] < 0.5 * history["error"][0]
    assert scorer.epochs_started[:2] == [(0, 256), (1, 256)]


def test_non_finite_loss_names_the_epoch():
    class Diverging(TwoPlayerScorer):
        def training_step(self, batch):
            scale = torch.tensor(float("inf")) if self.epochs_started[-1][0] == 1 else 1.0
            yield Phase(scale * self.first(batch).pow(2).mean(), optimizer="first")

    with pytest.raises(NonFiniteLossError, match="epoch 2"):
        make_engine(gradient_clip=None).fit(Diverging(), torch.randn(32, 3))


def test_early_stopping_restores_best_weights():
    torch.manual_seed(0)
    scorer = TwoPlayerScorer()
    train, validation = torch.randn(128, 3), torch.randn(64, 3)
    history = make_engine(epochs=200, patience=3, learning_rate=0.05).fit(scorer, train, validation)
    assert len(history["epoch"]) < 200
    best = min(history["val_loss"])
    with torch.no_grad():
        assert scorer.validation_loss(validation).item() == pytest.approx(best, rel=1e-5)


class WarmingUp(TwoPlayerScorer):
    """A validation loss that only grows during a warm-up, as when a penalty switches on after it."""

    early_stopping_start = 6

    def validation_loss(self, batch):
        epoch = self.epochs_started[-1][0]
        penalty = 10.0 * epoch if epoch < self.early_stopping_start else 0.0
        return super().validation_loss(batch) + penalty


def test_early_stopping_waits_for_the_warm_up_and_never_restores_its_weights():
    torch.manual_seed(0)
    train, validation = torch.randn(128, 3), torch.randn(64, 3)
    scorer = WarmingUp()
    engine = make_engine(epochs=40, patience=2, learning_rate=0.05)
    history = engine.fit(scorer, train, validation)
    # Without the warm-up rule, epoch 1 would be best and training would stop at epoch 3.
    assert len(history["epoch"]) >= WarmingUp.early_stopping_start + 2
    kept = min(history["val_loss"][WarmingUp.early_stopping_start:])
    with torch.no_grad():
        assert scorer.validation_loss(validation).item() == pytest.approx(kept, rel=1e-5)
    assert history["val_loss"][engine.kept_epoch - 1] == kept
    assert engine.kept_steps == engine.kept_epoch * 128 // 16  # eight batches of 16 per epoch


def test_a_fit_that_ends_inside_the_warm_up_keeps_its_last_weights():
    torch.manual_seed(0)
    train, validation = torch.randn(128, 3), torch.randn(64, 3)
    scorer = WarmingUp()
    history = make_engine(epochs=4, patience=1, learning_rate=0.05).fit(scorer, train, validation)
    assert history["epoch"] == [1, 2, 3, 4]
    with torch.no_grad():
        assert scorer.validation_loss(validation).item() == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_gradient_clipping_bounds_the_gradient_norm():
    class Steep(TwoPlayerScorer):
        def training_step(self, batch):
            yield Phase(1e6 * self.first(batch).sum(), optimizer="first")

    norms = []

    def record_norm(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads)).item())

    handle = register_optimizer_step_pre_hook(record_norm)
    try:
        make_engine(epochs=1, batch_size=64, gradient_clip=1e-3).fit(Steep(), torch.randn(64, 3))
    finally:
        handle.remove()
    assert len(norms) == 1
    assert 0 < norms[0] <= 1e-3 * (1 + 1e-4)


def test_flat_buffers_train_exactly_like_per_tensor_adam_with_clipping():
    torch.manual_seed(0)
    scorer, reference = TwoPlayerScorer(), TwoPlayerScorer()
    reference.load_state_dict(scorer.state_dict())
    batch = torch.randn(16, 3)

    class OneGroup(TwoPlayerScorer):
        def training_step(self, batch):
            yield Phase(10 * self.second(self.first(batch)).pow(2).mean(), optimizer="first")

        def optimizer_groups(self):
            return {"first": [*self.first.parameters(), *self.second.parameters()]}

    trained = OneGroup()
    trained.load_state_dict(scorer.state_dict())
    make_engine(epochs=3, batch_size=16, gradient_clip=0.5, learning_rate=0.1).fit(trained, batch)

    params = [*reference.first.parameters(), *reference.second.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        (10 * reference.second(reference.first(batch)).pow(2).mean()).backward()
        nn.utils.clip_grad_norm_(params, 0.5)
        optimizer.step()
    for (name, value), expected in zip(trained.state_dict().items(), reference.state_dict().values()):
        assert torch.allclose(value, expected, atol=1e-6), name


def test_parameters_get_their_own_storage_back_after_training():
    scorer = TwoPlayerScorer()
    make_engine(epochs=1).fit(scorer, torch.randn(32, 3))
    pointers = {p.data_ptr() for p in scorer.parameters()}
    assert len(pointers) == len(list(scorer.parameters()))
    assert all(p.grad is None for p in scorer.parameters())
    assert all(p.is_contiguous() and p.storage_offset() == 0 for p in scorer.parameters())


def test_groups_sharing_a_parameter_are_refused():
    class Shared(TwoPlayerScorer):
        def optimizer_groups(self):
            return {"first": list(self.first.parameters()), "second": list(self.first.parameters())}

    with pytest.raises(ValueError, match="shares parameters"):
        make_engine(epochs=1).fit(Shared(), torch.randn(32, 3))


class BatchRecorder(TwoPlayerScorer):
    """Records the rows of every training batch."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def training_step(self, batch):
        self.batches.append(batch.clone())
        yield from super().training_step(batch)


def test_min_batches_passes_a_small_training_set_several_times_per_epoch():
    scorer = BatchRecorder()
    data = torch.arange(20, dtype=torch.float32).reshape(20, 1).repeat(1, 3)
    make_engine(epochs=1, batch_size=8, min_batches=6).fit(scorer, data)
    rows = torch.cat(scorer.batches)[:, 0]
    assert len(rows) == 60  # ceil(6 * 8 / 20) = 3 whole passes
    assert [len(batch) for batch in scorer.batches] == [8] * 7 + [4]
    for start in (0, 20, 40):  # each pass is a full permutation of the rows
        assert sorted(rows[start:start + 20].tolist()) == sorted(data[:, 0].tolist())
    assert scorer.epochs_started == [(0, 20)]  # the epoch hook still sees one pass


def test_min_batches_leaves_larger_training_sets_and_the_default_one_pass():
    data = torch.randn(64, 3)
    for min_batches in (1, 4):
        scorer = BatchRecorder()
        make_engine(epochs=1, batch_size=16, min_batches=min_batches).fit(scorer, data)
        assert len(scorer.batches) == 4


def test_the_default_is_one_pass_even_below_one_batch():
    scorer = BatchRecorder()
    make_engine(epochs=1, batch_size=16).fit(scorer, torch.randn(10, 3))
    assert [len(batch) for batch in scorer.batches] == [10]


class ListSource:
    """A streamed training source (the RowSource interface) over a tensor, one batch per slice."""

    def __init__(self, rows):
        self.rows = rows

    def batches(self, batch_size, *, shuffle, generator):
        order = torch.randperm(len(self.rows), generator=generator) if shuffle else torch.arange(len(self.rows))
        yield from torch.split(self.rows[order], batch_size)


def test_min_batches_repeats_whole_passes_of_a_streamed_source():
    engine = make_engine(batch_size=8, min_batches=6)
    batches = list(engine._batches(ListSource(torch.randn(20, 3)), shuffle=True))
    assert [len(batch) for batch in batches] == [8, 8, 4] * 2  # two passes of three batches
    assert len(list(engine._batches(ListSource(torch.randn(20, 3)), shuffle=False))) == 3


def test_repeated_passes_are_drawn_lazily_in_the_same_order_as_one_long_permutation():
    data = torch.arange(20, dtype=torch.float32).reshape(20, 1)
    lazy = torch.cat(list(make_engine(batch_size=8, min_batches=6)._batches(data, shuffle=True)))
    generator = torch.Generator().manual_seed(0)
    eager = data[torch.cat([torch.randperm(20, generator=generator) for _ in range(3)])]
    assert torch.equal(lazy, eager)
