#!/usr/bin/env python3
"""Crash classes and signatures (tools/triage.py) on real reports in tools/testdata."""

import re
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import triage  # noqa: E402

TESTDATA = Path(__file__).parent / "testdata"


def load(name):
    return (TESTDATA / name).read_text()


class SignatureTest(unittest.TestCase):

    def test_asan_use_after_free(self):
        kind, frames, _ = triage.signature(load("asan_use_after_free.txt"))
        self.assertEqual(kind, "asan:heap-use-after-free")
        self.assertEqual(frames, ["poolguard::internal::LocklessBackend::PopFromShared",
                                  "poolguard::internal::LocklessBackend::Alloc",
                                  "poolguard::fuzz::World::RunOp"])

    def test_tsan_race_names_both_accesses(self):
        kind, frames, _ = triage.signature(load("tsan_data_race.txt"))
        self.assertEqual(kind, "tsan:data-race")
        self.assertEqual(frames[0], "poolguard::fuzz::World::CheckQuiescent")
        self.assertEqual(frames[-1], "racing with poolguard::internal::"
                         "BasicLockedBackend<poolguard::internal::SpinLock>::Flush")

    def test_oracle_hang_points_past_the_scheduler(self):
        kind, frames, _ = triage.signature(load("oracle_hang.txt"))
        self.assertEqual(kind, "oracle:hang")
        self.assertEqual(frames, ["poolguard::internal::Backoff::Wait",
                                  "poolguard::internal::LocklessBackend::AllocFromSystem",
                                  "poolguard::internal::LocklessBackend::Alloc"])

    def test_same_bug_at_other_addresses_and_pids_matches(self):
        text = load("asan_use_after_free.txt")
        moved = re.sub(r"0x[0-9a-f]+", "0x7f00deadbeef", text)
        moved = re.sub(r"==\d+==", "==4242==", moved)
        self.assertEqual(triage.signature(text)[2], triage.signature(moved)[2])

    def test_other_location_differs(self):
        text = load("asan_use_after_free.txt")
        other = text.replace("PopFromShared", "PushToShared", 1)
        self.assertNotEqual(triage.signature(text)[2], triage.signature(other)[2])

    def test_other_class_differs(self):
        text = load("asan_use_after_free.txt")
        other = text.replace("heap-use-after-free", "heap-buffer-overflow", 1)
        self.assertNotEqual(triage.signature(text)[2], triage.signature(other)[2])

    def test_race_accesses_match_in_either_order(self):
        text = load("tsan_data_race.txt")
        accesses = triage.race_accesses(text)
        self.assertEqual(len(accesses), 2)
        self.assertTrue(accesses[0].startswith("poolguard::fuzz::World::CheckQuiescent"))
        self.assertEqual(triage.race_accesses(load("asan_use_after_free.txt")), [])

    def test_libstdcxx_assertion(self):
        text = ("/usr/bin/../lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12/array:217: "
                "std::array<int, 4>::operator[](std::array::size_type) const: Assertion "
                "'__n < this->size()' failed.\n==1== ERROR: libFuzzer: deadly signal\n")
        self.assertEqual(triage.classify(text), "libstdc++:array")

    def test_unknown_output(self):
        self.assertEqual(triage.signature("nothing to see")[:2], ("unknown", []))


if __name__ == "__main__":
    unittest.main()
