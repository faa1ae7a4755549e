"""nafft: image motion deblurring with NAFNet and NAFFT-Net."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `nafft.load_default_model()` without importing torch at `import nafft`
    if name == "load_default_model":
        from nafft.weights import load_default_model

        return load_default_model
    raise AttributeError(f"module 'nafft' has no attribute '{name}'")
