"""Saliency providers (offline OpenCV baselines, centre bias, DeepGaze IIE, folders of maps) and their cache."""
