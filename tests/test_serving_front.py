"""``anomvae serve``: the requests MLflow's scoring server answered with 500, a stack
trace or a wrong score, each sent to a real guarded server on 127.0.0.1 over one
keep-alive connection, followed by a good request that must still get its exact scores."""

import http.client
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import anomvae
from anomvae.lifecycle.serving import local_server
from anomvae.lifecycle.serving_checks import MAX_ROWS, ColumnTypes, Refusal
from anomvae.lifecycle.serving_front import parse_json

SETTINGS = {"epochs": 5, "batch_size": 64, "random_state": 0}


def training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "amount": rng.normal(size=200),
        "flag": rng.random(200) > 0.5,
        "kind": rng.choice(["a", "b"], 200),
    })


@pytest.fixture(scope="module")
def guarded(mlflow_store, tmp_path_factory):
    frame = training_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = anomvae.AnomalyVAE(**SETTINGS).fit(frame)
    info = anomvae.log_model(detector, input_example=frame.head())
    with local_server(info.model_uri, tmp_path_factory.mktemp("front") / "server.log", guarded=True) as url:
        yield detector, frame, url


def split(frame: pd.DataFrame) -> str:
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}})


def send(connection, body, headers) -> tuple[int, bytes]:
    connection.request("POST", "/invocations", body=body, headers=headers)
    answer = connection.getresponse()
    return answer.status, answer.read()


JSON_HEADERS = {"Content-Type": "application/json"}
ROW = '{"amount": 0.1, "flag": true, "kind": "a"}'
BAD_REQUESTS = {
    "no content type": (415, "{}", {}),
    "unknown content type": (415, "{}", {"Content-Type": "text/plain"}),
    "5000-digit integer": (400, '{"dataframe_records": [{"amount": ' + "9" * 5000 + ', "flag": true, "kind": "a"}]}',
                           JSON_HEADERS),
    "JSON nested 5000 deep": (400, "[" * 5000 + "]" * 5000, JSON_HEADERS),
    "dict nested 5000 deep": (400, '{"a":' * 5000 + "1" + "}" * 5000, JSON_HEADERS),
    "not JSON": (400, "{not json", JSON_HEADERS),
    "not UTF-8": (400, b"\xff\xfe{}", JSON_HEADERS),
    "null boolean": (400, '{"dataframe_records": [{"amount": 0.1, "flag": null, "kind": "a"}]}', JSON_HEADERS),
    "missing boolean key": (400, '{"dataframe_records": [{"amount": 0.1, "kind": "a"}]}', JSON_HEADERS),
    "true in a number column": (400, '{"dataframe_records": [{"amount": true, "flag": true, "kind": "a"}]}',
                                JSON_HEADERS),
    "0.5 in a boolean column": (400, '{"dataframe_split": {"columns": ["amount", "flag", "kind"], '
                                     '"data": [[0.1, 0.5, "a"]]}}', JSON_HEADERS),
    "text in a boolean column": (400, '{"dataframe_records": [{"amount": 0.1, "flag": "no", "kind": "a"}]}',
                                 JSON_HEADERS),
    "too many rows": (413, '{"dataframe_records": [' + ",".join([ROW] * (MAX_ROWS + 1)) + "]}", JSON_HEADERS),
    "CSV that does not parse": (400, 'amount,flag,kind\n0.1,true,"a\n1,2', {"Content-Type": "text/csv"}),
    "CSV with True in a number column": (400, "amount,flag,kind\nTrue,true,a\n", {"Content-Type": "text/csv"}),
    "a model column missing": (400, '{"dataframe_split": {"columns": ["amt", "flag", "kind"], '
                                    '"data": [[0.1, true, "a"]]}}', JSON_HEADERS),
    "no rows": (400, '{"dataframe_split": {"columns": ["amount", "flag", "kind"], "data": []}}', JSON_HEADERS),
    "an unknown param": (400, '{"dataframe_records": [' + ROW + '], "params": {"p_values": true}}', JSON_HEADERS),
    "a threshold that is text": (400, '{"dataframe_records": [' + ROW + '], "params": {"threshold": "abc"}}',
                                 JSON_HEADERS),
    "body over the limit": (413, b"x" * (16 * 1024 * 1024 + 1), JSON_HEADERS),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_gets_a_4xx_without_trace_and_the_connection_stays_usable(guarded, name):
    detector, frame, url = guarded
    status, body, headers = BAD_REQUESTS[name]
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    try:
        got, answer = send(connection, body, headers)
        assert got == status, answer[:500]
        assert b"Traceback" not in answer and b"stack_trace" not in answer
        assert "message" in json.loads(answer)
        good = frame.head(5)
        got, answer = send(connection, split(good), JSON_HEADERS)
    finally:
        connection.close()
    assert got == 200, answer[:500]
    scores = [row["score"] for row in json.loads(answer)["predictions"]]
    np.testing.assert_allclose(scores, -detector.score_samples(good), rtol=1e-9)


@pytest.mark.parametrize("content_type", ["application/vnd.apache.parquet", "application/x-parquet",
                                          "APPLICATION/JSON", "Text/CSV; charset=utf-8"])
def test_every_accepted_media_type_is_scored_whatever_its_case(guarded, content_type):
    # Review finding: Parquet was refused whatever the header (the guard and MLflow named
    # different media types), and an upper-case JSON type passed the guard but not MLflow.
    detector, frame, url = guarded
    rows = frame.head(4)
    if "parquet" in content_type:
        body = rows.to_parquet()
    elif "json" in content_type.lower():
        body = split(rows)
    else:
        body = rows.to_csv(index=False)
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    try:
        status, answer = send(connection, body, {"Content-Type": content_type})
    finally:
        connection.close()
    assert status == 200, answer[:500]
    scores = [row["score"] for row in json.loads(answer)["predictions"]]
    np.testing.assert_allclose(scores, -detector.score_samples(rows), rtol=1e-6)


def test_refusals_name_the_problem_without_repeating_the_request(guarded):
    _, frame, url = guarded
    body = json.dumps({"dataframe_split": {"columns": ["amt", "flag", "kind"],
                                           "data": frame.head(30).to_numpy().tolist()}})
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    try:
        status, answer = send(connection, body, JSON_HEADERS)
    finally:
        connection.close()
    message = json.loads(answer)["message"]
    assert status == 400 and "lacks the model column(s) ['amount']" in message and len(message) < 200


def test_a_null_param_means_the_models_default(guarded):
    detector, frame, url = guarded
    rows = frame.head(3)
    body = json.dumps({**json.loads(split(rows)), "params": {"threshold": None, "top_features": None}})
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    try:
        status, answer = send(connection, body, JSON_HEADERS)
    finally:
        connection.close()
    assert status == 200, answer[:500]
    flags = [row["is_anomaly"] for row in json.loads(answer)["predictions"]]
    assert flags == list(detector.predict(rows) == -1)


def test_model_refusals_lose_their_stack_trace(guarded):
    _, frame, url = guarded
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    try:
        bad = frame.head(3).assign(amount=[0.1, float("nan"), 0.2]).astype({"amount": object})
        body = split(bad).replace("NaN", "null")
        status, answer = send(connection, body, JSON_HEADERS)
    finally:
        connection.close()
    assert status == 400
    assert b"stack_trace" not in answer and "NaN" in json.loads(answer)["message"]


@pytest.mark.parametrize("document, pattern", [
    ({"dataframe_records": [{"amount": 1.0, "flag": None, "kind": "a"}]}, "row 0 holds a missing value"),
    ({"dataframe_records": [{"amount": 1.0, "kind": "a"}]}, "row 0 lacks the column 'flag'"),
    ({"dataframe_split": {"columns": ["amount", "flag", "kind"], "data": [[1.0, True, 3]]}}, "takes text"),
    ({"inputs": {"amount": [1.0], "flag": [1], "kind": ["a"]}}, "column 'flag' is boolean"),
    # A user's finding: scalars were answered "the request holds no rows".
    ({"inputs": {"amount": 1.0, "flag": True, "kind": "a"}}, "column 'amount' must be a list of values, one per row"),
    ({"inputs": {"amount": [1.0, 2.0], "flag": [True], "kind": ["a", "b"]}}, "lists of different lengths"),
    ({"dataframe_records": {"amount": 1}}, "list of objects"),
    ([1, 2], "must be an object"),
    ({"dataframe_split": {}, "inputs": []}, "exactly one of the keys"),
    # New-user finding: a tensor sent to a column model was answered "row 0 must be an object mapping ..."
    ({"inputs": [[1.0, True, "a"]]}, 'named columns \\[.amount., .flag., .kind.\\], not a tensor: send {"dataframe_split"'),
])
def test_column_types_refuse_what_mlflow_would_cast(document, pattern):
    types = ColumnTypes([("amount", "double"), ("flag", "boolean"), ("kind", "string")])
    with pytest.raises(Refusal, match=pattern):
        types.check(document)


@pytest.mark.parametrize("count", [7.9999, 7.5, 1e19, -1e19])
def test_integer_columns_refuse_what_mlflow_would_truncate_or_wrap(count):
    types = ColumnTypes([("amount", "double"), ("count", "long")])
    with pytest.raises(Refusal, match="column 'count' held integers in fit"):
        types.check({"dataframe_split": {"columns": ["amount", "count"], "data": [[0.1, count]]}})
    with pytest.raises(Refusal, match="row 0 holds"):
        types.check({"dataframe_records": [{"amount": 0.1, "count": count}]})


def test_null_in_an_integer_column_and_a_repeated_column_are_named():
    types = ColumnTypes([("amount", "double"), ("count", "long")])
    with pytest.raises(Refusal, match="column 'count' held integers in fit: row 0 holds a missing value"):
        types.check({"dataframe_records": [{"amount": 0.1, "count": None}]})
    with pytest.raises(Refusal, match=r"names the model column\(s\) \['amount'\] more than once"):
        types.check({"dataframe_split": {"columns": ["amount", "count", "amount"], "data": [[0.1, 1, 0.2]]}})
    # A repeated column the model does not use is dropped by MLflow, as any extra column is.
    types.check({"dataframe_split": {"columns": ["amount", "count", "id", "id"], "data": [[0.1, 1, 7, 8]]}})


@pytest.mark.parametrize("params, pattern", [
    ([1], "params must be an object"),
    ({"p_values": True}, r"unknown param\(s\) \['p_values'\]; this model takes \['threshold', 'top_features'\]"),
    ({"threshold": "abc"}, "param 'threshold' takes a finite number"),
    ({"threshold": True}, "param 'threshold' takes a finite number"),
    ({"top_features": "2"}, "param 'top_features' takes a non-negative whole number"),
    ({"top_features": -1}, "non-negative whole number"),
    ({"top_features": 1.5}, "non-negative whole number"),
])
def test_params_the_model_does_not_take_are_refused(params, pattern):
    types = ColumnTypes([("amount", "double")], params={"threshold": "double", "top_features": "long"})
    with pytest.raises(Refusal, match=pattern):
        types.check({"dataframe_records": [{"amount": 0.1}], "params": params})
    types.check({"dataframe_records": [{"amount": 0.1}], "params": {"threshold": 2, "top_features": 0}})
    types.check({"dataframe_records": [{"amount": 0.1}], "params": {"threshold": None}})  # null: the default


@pytest.mark.parametrize("csv, pattern", [
    ("amount,count,flag\nTrue,1,true\n", "column 'amount' takes numbers: row 0 holds 'True'"),
    ("amount,count,flag\n0.1,3.7,true\n", "column 'count' takes whole numbers"),
    ("amount,count,flag\n0.1,,true\n", "column 'count' takes whole numbers, none missing"),
    ("amount,count,flag\n0.1,1,yes\n", "column 'flag' takes true or false: row 0 holds 'yes'"),
    ("amount,flag\n0.1,true\n", r"lacks the model column\(s\) \['count'\]"),
    ("amount,count,flag\n", "holds no rows"),
    # A user's finding: one field more per row was read as a row index, every value moved one column.
    ("amount,count,flag\n7,0.1,2,true\n", "row 0 holds 4 fields, the header 3"),
    ("amount,count,flag\n0.1,2,true,\n", "row 0 holds 4 fields, the header 3"),
])
def test_csv_values_mlflow_would_cast_are_refused(csv, pattern):
    types = ColumnTypes([("amount", "double"), ("count", "long"), ("flag", "boolean")])
    with pytest.raises(Refusal, match=pattern):
        types.check_csv(csv.encode())
    types.check_csv(b"flag,count,amount,id\nTRUE,2,,x\nfalse,-3,nan,y\n")  # missing floats: the model names them
    # A review's finding: CR-only line ends and a whitespace-only line, which MLflow reads, were refused.
    types.check_csv(b"amount,count,flag\r0.1,1,true\r0.2,2,false\r")
    types.check_csv(b"amount,count,flag\n0.1,1,true\n  \n0.2,2,false\n")


def test_a_split_index_of_another_length_than_the_data_is_refused():
    # A user's finding: pandas repeated one row along an index of two labels, and it was scored twice.
    types = ColumnTypes([("amount", "double")])
    with pytest.raises(Refusal, match='"index" holds 2 labels for 1 row'):
        types.check({"dataframe_split": {"columns": ["amount"], "index": [0, 1], "data": [[0.1]]}})
    types.check({"dataframe_split": {"columns": ["amount"], "index": [5, 7], "data": [[0.1], [0.2]]}})


def test_integer_columns_take_whole_numbers_written_as_floats():
    ColumnTypes([("count", "long")]).check({"dataframe_split": {"columns": ["count"], "data": [[8.0], [-3]]}})


def test_column_types_accept_well_typed_rows():
    types = ColumnTypes([("amount", "double"), ("count", "long"), ("flag", "boolean"), ("kind", "string")])
    types.check({"dataframe_records": [{"amount": 1, "count": 2, "flag": False, "kind": "a", "extra": "x"}]})
    types.check({"dataframe_split": {"columns": ["kind", "flag", "count", "amount"], "data": [["b", True, 1, 0.5]]}})


def test_tensor_requests_are_checked_for_shape_and_numbers():
    types = ColumnTypes([], tensor=True)
    types.check({"inputs": np.zeros((2, 1, 4, 4)).tolist()})
    with pytest.raises(Refusal, match="ragged or holds non-numbers"):
        types.check({"inputs": [[1, 2], [3]]})
    with pytest.raises(Refusal, match="dimensions"):
        types.check({"inputs": np.zeros((1, 1, 1, 1, 1, 1)).tolist()})
    with pytest.raises(Refusal, match="holds true or false"):  # MLflow would score a black image
        types.check({"inputs": [[[[True, 0.5], [False, 1.0]]]]})


def test_json_limits():
    assert parse_json(b'{"a": ' + b"9" * 100 + b"}") == {"a": int("9" * 100)}
    with pytest.raises(Refusal, match="101 digits"):
        parse_json(b'{"a": ' + b"9" * 101 + b"}")
    with pytest.raises(Refusal, match="nested too deeply"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize("option", [["--threads", "0"], ["--workers", "0"]])
def test_serve_refuses_fewer_than_one_worker_or_thread_before_starting(option, capsys):
    from anomvae.cli import main

    assert main(["serve", "models:/never-started@champion", *option]) == 2
    assert "workers and threads must be at least 1" in capsys.readouterr().err
