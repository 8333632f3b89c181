"""Batch scoring of a registered detector with ``mlflow.pyfunc.spark_udf`` on local Spark."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import anomvae

pytest.importorskip("pyspark", reason="pyspark is not installed; install the extra: pip install 'anomvae[spark]'")

MODEL_NAME = "spark-test"


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("anomvae-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.mark.parametrize("order", ["training", "reversed"])
def test_spark_udf_scores_equal_native_scores(mlflow_store, spark, order):
    # Columns go in as a struct: spark_udf binds a struct's fields by name, whereas
    # positional arguments take the signature's names in order (a reordered call
    # would silently score the wrong columns; docs/mlflow.md says so).
    from pyspark.sql.functions import struct

    rng = np.random.default_rng(5)
    columns = ["amount", "age", "balance"]
    train = pd.DataFrame(rng.normal(size=(200, 3)) * [50, 10, 1000], columns=columns)
    detector = anomvae.AnomalyVAE(**FAST).fit(train)
    anomvae.log_model(detector, registered_model_name=MODEL_NAME, input_example=train.head(), alias="champion")

    batch = pd.DataFrame(rng.normal(size=(500, 3)) * [60, 12, 1500], columns=columns)
    batch["row_id"] = np.arange(len(batch))
    frame = spark.createDataFrame(batch).repartition(2)
    score = mlflow.pyfunc.spark_udf(spark, f"models:/{MODEL_NAME}@champion", env_manager="local")
    scored = (
        frame.withColumn("prediction", score(struct(*(columns if order == "training" else columns[::-1]))))
        .select("row_id", "prediction.score", "prediction.is_anomaly", "prediction.top_feature_1")
        .toPandas()
        .sort_values("row_id")
    )
    native = detector.anomaly_score(batch[columns])
    np.testing.assert_allclose(scored["score"], native, rtol=1e-12)
    np.testing.assert_array_equal(scored["is_anomaly"], detector.predict(batch[columns]) == -1)
    top = np.asarray(columns)[np.argmax(detector.feature_scores(batch[columns]).to_numpy(), axis=1)]
    np.testing.assert_array_equal(scored["top_feature_1"], top)
