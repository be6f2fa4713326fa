"""Float, fx-traceable classification models built for BN folding and quantization."""

from ddq_edge.models.mobilenet_v1 import mobilenet_v1
from ddq_edge.models.mobilenet_v2 import mobilenet_v2
from ddq_edge.models.registry import ARCHITECTURES, build_model
from ddq_edge.models.resnet import resnet

__all__ = ["ARCHITECTURES", "build_model", "mobilenet_v1", "mobilenet_v2", "resnet"]
