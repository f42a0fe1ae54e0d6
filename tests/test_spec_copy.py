"""The ECS model vendored in crates/model/spec (what the code is generated from) is the shared
contract, byte for byte. The shared copy sits beside the repository on developer machines and in CI."""

import filecmp

from helpers import REPO_ROOT, SPEC_DIR

SHARED = REPO_ROOT.parent / "shared" / "spec" / "ecs"


def test_vendored_model_matches_the_shared_spec():
    assert SHARED.is_dir(), f"expected the shared spec at {SHARED}"
    for name in ["service-2.json", "examples-1.json", "paginators-1.json", "waiters-2.json"]:
        assert filecmp.cmp(SPEC_DIR / name, SHARED / name, shallow=False), f"{name} differs from {SHARED / name}"


def test_vendored_elbv2_model_matches_the_shared_spec():
    shared = REPO_ROOT.parent / "shared" / "spec" / "elbv2"
    vendored = REPO_ROOT / "crates" / "elbv2" / "spec"
    assert shared.is_dir(), f"expected the shared spec at {shared}"
    for name in ["service-2.json", "examples-1.json", "paginators-1.json", "waiters-2.json"]:
        assert filecmp.cmp(vendored / name, shared / name, shallow=False), f"{name} differs from {shared / name}"
