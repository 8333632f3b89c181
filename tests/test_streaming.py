"""Out-of-core fit: Parquet datasets and DataFrame chunks, streamed through the same engine."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import anomvae
from anomvae import AnomalyVAE, AnomalyVAEGAN
from anomvae import streaming

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

COLUMNS = [f"c{i}" for i in range(6)]
PARAMS = dict(epochs=4, random_state=0)


def rows(n, seed):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 6)) @ np.random.default_rng(9).normal(size=(6, 6)),
                         columns=COLUMNS)
    frame["shop"] = rng.choice(["a", "b", "c"], n)
    return frame


@pytest.fixture(scope="module")
def train():
    return rows(6000, seed=0)


@pytest.fixture(scope="module")
def labelled():
    test = rows(1000, seed=1)
    test.iloc[:50, :6] = np.random.default_rng(2).normal(size=(50, 6)) * 8
    return test, np.r_[np.ones(50), np.zeros(950)]


@pytest.fixture(scope="module")
def parquet_dir(train, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parquet")
    for part, start in enumerate(range(0, len(train), 3000)):
        pq.write_table(pa.Table.from_pandas(train.iloc[start:start + 3000], preserve_index=False),
                       folder / f"part-{part}.parquet", row_group_size=1000)
    return folder


def auc(detector, labelled):
    test, truth = labelled
    return roc_auc_score(truth, detector.anomaly_score(test))


def test_parquet_fit_matches_the_in_memory_fit_and_keeps_the_model_contract(
        parquet_dir, train, labelled, tmp_path):
    streamed = AnomalyVAE(**PARAMS).fit(parquet_dir)
    in_memory = AnomalyVAE(**PARAMS).fit(train)
    assert abs(auc(streamed, labelled) - auc(in_memory, labelled)) < 0.02
    assert streamed.encoder_.categories == in_memory.encoder_.categories
    assert streamed.reference_source_ == "held-out"
    assert list(streamed.feature_names_in_) == list(train.columns)
    flagged = (streamed.predict(rows(2000, seed=3)) == -1).mean()
    assert flagged < 0.05
    streamed.save(tmp_path / "model.safetensors")
    loaded = anomvae.load(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(loaded.score_samples(labelled[0]), streamed.score_samples(labelled[0]))


def test_single_file_dataset_object_list_and_callable_sources_train(parquet_dir, train):
    import pyarrow.dataset as ds

    chunks = [train.iloc[start:start + 1500] for start in range(0, len(train), 1500)]
    for source in (parquet_dir / "part-0.parquet", ds.dataset(parquet_dir), chunks, lambda: iter(chunks)):
        detector = AnomalyVAEGAN(epochs=1, random_state=0).fit(source)
        assert np.isfinite(detector.offset_)


def test_category_outside_the_sample_is_still_known(train):
    late = train.iloc[:2000].assign(shop=["z"] + ["a"] * 1999)
    detector = AnomalyVAE(epochs=1, random_state=0).fit([train, late])
    assert detector.encoder_.categories["shop"] == ["a", "b", "c", "z"]


def test_stream_is_read_in_bounded_shuffled_batches(train):
    chunks = [train.iloc[start:start + 500, :6] for start in range(0, len(train), 500)]
    data = streaming.streamed_training_data(
        chunks, AnomalyVAE()._fit_encoding, anomvae.base.inputs.encode_frame, seed=0,
        validation_fraction=0.2, device=__import__("torch").device("cpu"),
    )
    generator = __import__("torch").Generator().manual_seed(0)
    batches = list(data.train.batches(128, shuffle=True, generator=generator))
    assert sum(len(batch) for batch in batches) == data.n_train == len(data.train)
    assert data.n_train + data.n_validation == len(train)
    assert max(len(batch) for batch in batches) == 128


@pytest.mark.parametrize("source, error, match", [
    (iter([pd.DataFrame({"a": [1.0, 2.0]})]), TypeError, "one-shot"),
    ([pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"b": [1.0, 2.0]})], ValueError, "same columns"),
    ([pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [1.0, np.nan]})], ValueError, "chunk 1.*NaN"),
    ("/nonexistent/anomvae/data", FileNotFoundError, "nonexistent"),
])
def test_bad_streams_are_refused_clearly(source, error, match):
    detector = AnomalyVAE(epochs=1)
    with pytest.raises(error, match=match):
        detector.fit(source)
    assert not hasattr(detector, "scorer_")


def test_a_folder_with_a_file_that_is_not_parquet_is_refused_naming_it(tmp_path):
    pq.write_table(pa.Table.from_pandas(rows(200, seed=5), preserve_index=False), tmp_path / "part-0.parquet")
    (tmp_path / "README.txt").write_text("notes")
    with pytest.raises(ValueError, match="folder holding only Parquet files.*README.txt"):
        AnomalyVAE(epochs=1).fit(tmp_path)


def test_only_fit_takes_streamed_data_and_the_other_methods_say_so(parquet_dir, train):
    # Review finding: partial_fit on a Parquet path said "X is an array holding text", on a list of
    # DataFrames "Found array with dim 3", set_threshold on a callable "has no len()".
    detector = AnomalyVAE(epochs=2, random_state=0).fit(parquet_dir)
    chunks = [train.iloc[:100], train.iloc[100:200]]
    calls = [lambda: detector.partial_fit(parquet_dir), lambda: detector.partial_fit(chunks),
             lambda: anomvae.monitor(detector, chunks), lambda: detector.score_samples(lambda: iter(chunks)),
             lambda: detector.set_threshold(detector.threshold_.strategy, lambda: iter(chunks))]
    for call in calls:
        with pytest.raises(TypeError, match="only fit trains on streamed data"):
            call()


def test_a_later_chunk_with_booleans_in_a_numeric_column_is_refused(monkeypatch):
    # Review finding: chunks outside the in-memory sample were read with to_numpy(float64), so
    # True or "0.5" in a numeric column trained as 1.0 / 0.5 while scoring the same rows refused them.
    monkeypatch.setattr(streaming, "SAMPLE_ROWS", 100)
    rng = np.random.default_rng(0)
    chunks = [pd.DataFrame(rng.normal(size=(100, 3)), columns=list("abc")) for _ in range(5)]
    chunks[3] = chunks[3].astype({"a": object})
    chunks[3].iloc[7, 0] = True
    with pytest.raises(TypeError, match="streamed chunk 3: column 'a' mixes numbers and text .values of types bool"):
        AnomalyVAE(epochs=2, random_state=0).fit(chunks)  # now by the first pass's check of each chunk


def test_a_pyarrow_table_is_read_as_the_dataframe_it_holds():
    # New-user finding: a Table with a text column went through numpy.asarray and failed with
    # "holds text in a column that was numeric in fit"; a Parquet file or a dataset of it fitted fine.
    import pyarrow as pa

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"]).assign(shop=rng.choice(["x", "y"], 300))
    table = pa.Table.from_pandas(frame)
    from_table = AnomalyVAE(epochs=2, random_state=0).fit(table)
    from_frame = AnomalyVAE(epochs=2, random_state=0).fit(frame)
    assert list(from_table.feature_names_in_) == ["a", "b", "c", "shop"]
    np.testing.assert_array_equal(from_table.score_samples(table), from_frame.score_samples(frame))
    np.testing.assert_array_equal(from_table.score_samples(table.to_batches()[0]),
                                  from_frame.score_samples(frame)[:table.to_batches()[0].num_rows])


def test_an_empty_list_is_named_as_such():
    # New-user finding: fit([]) answered scikit-learn's "Expected 2D array, got 1D array instead".
    with pytest.raises(ValueError, match="fit got an empty list"):
        AnomalyVAE(epochs=1).fit([])


def _chunks(seed=0):
    rng = np.random.default_rng(seed)
    return [pd.DataFrame({"a": rng.normal(size=150), "b": rng.normal(size=150), "c": rng.integers(0, 10, 150)})
            for _ in range(3)]


def test_a_callable_is_checked_at_every_read_not_only_the_first():
    # Attack finding: a callable whose later reads swapped two columns trained silently on swapped
    # values; one dropping a column failed with numpy's broadcast error.
    chunks = _chunks()
    for later in (chunks[2][["b", "a", "c"]], chunks[2][["a", "b"]]):
        calls = []

        def source(later=later):
            calls.append(1)
            return iter(chunks if len(calls) == 1 else [*chunks[:2], later])

        with pytest.raises(ValueError, match=r"streamed chunk 2 has columns .*every chunk of every read must"):
            AnomalyVAE(epochs=2, random_state=0).fit(source)


@pytest.mark.parametrize("change, match", [
    (lambda c: c.assign(c=c.c.astype(str)), "streamed chunk 1: column 'c' holds category values, earlier "
                                            "chunks held numeric ones"),
    (lambda c: c.assign(c=(c.a > 0).astype(object).where(c.a > 1, None)),
     r"streamed chunk 1: Input X contains NaN in rows 0, .*column c"),
    (lambda c: c.assign(c=c.c.astype(float)), None),  # integers and floats are one kind
])
def test_a_chunk_whose_column_changes_kind_is_named_with_its_own_rows(change, match):
    # Attack finding: such chunks were refused by the encoder's fit on the in-memory sample, naming
    # a row of that sample ("'5' in row 272" of 150-row chunks), or the wrong chunk.
    chunks = _chunks()
    chunks[1] = change(chunks[1])
    if match is None:
        AnomalyVAE(epochs=2, random_state=0).fit(chunks)
        return
    with pytest.raises((TypeError, ValueError), match=match):
        AnomalyVAE(epochs=2, random_state=0).fit(chunks)


def test_a_list_mixing_dataframes_and_arrays_is_refused():
    # Attack finding: such lists gave sklearn's "dim 3" or numpy's "inhomogeneous shape" errors, or
    # (an array first) trained an image model on three "images".
    chunks = _chunks()
    for mixed in ([*chunks[:2], chunks[2].to_numpy()], [chunks[0].to_numpy(), *chunks[1:]]):
        with pytest.raises(TypeError, match="is a ndarray, not a DataFrame .a list is streamed when every item"):
            AnomalyVAE(epochs=2, random_state=0).fit(mixed)


def test_an_unreadable_row_group_is_named_with_its_file(tmp_path):
    # Attack finding: a corrupt data page raised pyarrow's OSError naming no file.
    chunks = _chunks()
    pq.write_table(pa.Table.from_pandas(chunks[0], preserve_index=False), tmp_path / "p0.parquet")
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pandas(chunks[1], preserve_index=False), good)
    data = good.read_bytes()
    (tmp_path / "p1.parquet").write_bytes(data[:4] + bytes(b ^ 0xFF for b in data[4:10]) + data[10:])
    good.unlink()
    with pytest.raises(ValueError, match=r"streamed chunk 1 \(.*p1.parquet, row group 0\) cannot be read"):
        AnomalyVAE(epochs=2, random_state=0).fit(tmp_path)


def test_chunks_too_small_to_show_a_kind_and_chunks_of_date_like_text_still_fit():
    # Review findings on the per-chunk kind check: a 0-row chunk of an object column of Decimals,
    # an empty pd.DataFrame(columns=...), and a chunk whose text all looked like ISO dates were refused.
    from decimal import Decimal
    chunks = [frame.assign(t=np.where(frame.a > 0, "x", "y"), d=[Decimal(str(round(v, 3))) for v in frame.b])
              for frame in _chunks()]
    AnomalyVAE(epochs=2, random_state=0).fit([chunks[0], chunks[1].iloc[:0], chunks[2]])
    AnomalyVAE(epochs=2, random_state=0).fit([chunks[0], pd.DataFrame(columns=chunks[0].columns), chunks[2]])
    chunks[0].loc[0, "t"] = "2024-01-01"
    chunks[1]["t"] = "2024-01-01"
    AnomalyVAE(epochs=2, random_state=0).fit(chunks)


def test_missing_or_empty_text_is_named_by_chunk_with_the_categorical_message():
    chunks = [frame.assign(t=np.where(frame.a > 0, "x", "y")) for frame in _chunks()]
    for missing in ("", None):
        broken = [chunk.copy() for chunk in chunks]
        broken[2].loc[5, "t"] = missing
        with pytest.raises(ValueError, match=r"streamed chunk 2: .*NaN or empty text in categorical column 't' .row 5"):
            AnomalyVAE(epochs=2, random_state=0).fit(broken)
