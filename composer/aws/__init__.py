"""Deploy to Amazon SageMaker: model data to S3, model, endpoint config, endpoint, autoscaling.

Every request is built by `composer.render.sagemaker` (and `autoscaling` here), so `--dry-run`,
`export` and the real calls send the same documents.
"""
