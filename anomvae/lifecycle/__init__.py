"""The MLflow lifecycle of anomvae models, in one package.

- :mod:`~anomvae.lifecycle.tracking`: training runs, registered models;
- :mod:`~anomvae.lifecycle.promotion`: :func:`promote`, a new threshold as a new version;
- :mod:`~anomvae.lifecycle.plots`: the figures logged with a run;
- :mod:`~anomvae.lifecycle.pyfunc`: the MLflow ``PythonModel``, :func:`log_model`,
  signature and parity check (its model code is ``_pyfunc_model_code.py``);
- :mod:`~anomvae.lifecycle.serving_inputs`: the input forms a served model accepts;
- :mod:`~anomvae.lifecycle.serving`: a local ``mlflow models serve`` process;
- :mod:`~anomvae.lifecycle.serving_front`, :mod:`~anomvae.lifecycle.serving_checks`,
  :mod:`~anomvae.lifecycle.serving_direct`, :mod:`~anomvae.lifecycle.serving_app`:
  ``anomvae serve``, its request guard and what a request must hold;
- :mod:`~anomvae.lifecycle._mlflow`: the only use of private MLflow helpers.

Importing :mod:`anomvae` imports none of these; ``anomvae.tracking`` and
``anomvae.log_model`` are reached lazily.
"""
