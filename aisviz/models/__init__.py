"""Networks (torchvision, timm, the offline EfficientNet-Lite0, precomputed activations) and the activation
extraction with its feature cache."""
