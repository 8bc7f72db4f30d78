"""skewwatch: tells a live model's owners whether a production gap is data, model or system."""

__version__ = "0.1.0"
