"""nafft: image motion deblurring with NAFNet and NAFFT-Net."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `nafft.open_model(...)` without importing torch at `import nafft`
    if name in ("open_model", "load_default_model", "OpenedModel"):
        from nafft.inference import opened_model

        return getattr(opened_model, name)
    if name == "deblur":  # nafft.deblur(image): see nafft.inference.one_call
        from nafft.inference.one_call import deblur

        return deblur
    raise AttributeError(f"module 'nafft' has no attribute '{name}'")
