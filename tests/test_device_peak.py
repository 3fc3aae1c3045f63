import pytest

from ntjax.core.flops import PEAK_FLOPS, device_peak_flops


@pytest.mark.parametrize("kind, platform, key", [
    ("NVIDIA H100 80GB HBM3", "gpu", "h100"), ("NVIDIA H100 PCIe", "gpu", "h100-pcie"),
    ("NVIDIA A100-SXM4-80GB", "gpu", "a100"), ("NVIDIA H200", "gpu", "h200"), ("TPU v4", "tpu", "tpu-v4"),
])
def test_known_devices_get_their_dense_peak(kind, platform, key):
    assert device_peak_flops(kind, platform) == PEAK_FLOPS[key]


def test_cpu_and_unknown_devices_report_no_peak():
    assert device_peak_flops("cpu", "cpu") is None
    assert device_peak_flops("Some Future Chip", "gpu") is None
