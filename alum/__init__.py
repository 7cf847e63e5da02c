"""alum: adversarial pretraining (ALUM) and regularised fine-tuning (SMART) for Hugging Face encoders."""

__version__ = "0.1.0"
