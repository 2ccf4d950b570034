"""No network: tests run with sockets blocked, and a hub load fails at once with a clear message."""

import socket

import pytest

from geolib import runtime

REV = "0" * 40


def test_sockets_are_blocked_in_tests():
    with pytest.raises(Exception, match="[Ss]ocket"):
        socket.create_connection(("198.51.100.1", 443), timeout=1)


@pytest.mark.parametrize("load", [
    lambda: __import__("geolib.segmentation", fromlist=["x"]).load_segmenter("facebook/maskformer-swin-large-ade", revision=REV),
    lambda: __import__("geolib.zero_shot", fromlist=["x"]).load_streetclip("geolocal/StreetCLIP", revision=REV),
    lambda: __import__("geolib.vlm", fromlist=["x"]).build_model({"model_id": "Qwen/Qwen2.5-VL-7B-Instruct", "revision": REV}),
], ids=["segmenter", "streetclip", "vlm"])
def test_a_hub_load_offline_fails_at_once_with_a_clear_message(load):
    assert runtime.hub_offline()
    with pytest.raises(runtime.HubUnavailable, match="HF_HUB_OFFLINE=0") as info:
        load()
    assert "not in the local Hugging Face cache" in str(info.value)


def test_hub_load_passes_other_errors_and_success_through():
    with runtime.hub_load("x"):
        value = 1
    assert value == 1
    with pytest.raises(KeyError):
        with runtime.hub_load("x"):
            raise KeyError("not a load error")
