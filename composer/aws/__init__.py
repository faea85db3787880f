"""Deploy to Amazon SageMaker: model data to S3, model, endpoint config, endpoint, autoscaling.

Every request is built by `composer.render` (`sagemaker.py`; `transform.py` for
CreateTransformJob) and `autoscaling` here, so `--dry-run`, `export` and the real calls send the
same documents. Where the rest lives: `plan` (checks before any call, and the one dry-run
document), `model` (bucket, model data, CreateModel), `deploy` (the endpoint's lifecycle),
`transform` (batch transform jobs), `calls` (failures as messages, describe and delete by
name), `report` (what the layer tells its caller), `clients`.
"""
