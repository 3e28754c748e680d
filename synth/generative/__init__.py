"""AU-conditioned generators of face crops (RGB + depth), their training, sampling and corpus writer.

``frames``    training frames: aligned RGB + depth crops with AU intensities (:func:`load_face_frames`)
``base``      the :class:`AUGenerator` protocol, the model folder, :func:`load_generator`, :func:`model_sha256`
``config``    the YAML configuration (``configs/synth/*.yaml``)
``diffusion`` diffusers UNet2DConditionModel + DDPM/DDIM: ``AUConditionedFacePipeline``
``identity``  the identity input's prior (new people), the distance rule, noise schemes, identity labels
``gan``       GANimation-style conditional GAN in plain PyTorch
``train``     resumable training loop (checkpoints, logs, sample grids, optional DP-SGD)
``corpus``    sequences from emotions or AU timelines, written as synthetic sessions
"""

from synth.generative.base import (AUGenerator, load_generator, model_sha256, read_model_card, training_frame_selection,
                   training_sessions)
from synth.generative.frames import FaceFrames, load_face_frames, rgbd_to_images

__all__ = ["AUGenerator", "FaceFrames", "load_face_frames", "load_generator", "model_sha256", "read_model_card",
           "rgbd_to_images", "training_frame_selection", "training_sessions"]
