def model_fn(model_dir: str) -> None:
    """A placeholder: the bad specs are only validated, never served."""
    return None
