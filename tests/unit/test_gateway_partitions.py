"""The batch route's partitioning (shared/adapters/producer.py): the same partition for a
key as aiokafka's default partitioner, so one recipient's events keep one partition
whichever route brought them."""

from __future__ import annotations

import os

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from shared.adapters.producer import default_partition, murmur2


def test_murmur2_is_aiokafkas_for_every_length() -> None:
    keys = [os.urandom(n) for n in range(70) for _ in range(50)]
    keys += [b"", b"\xff" * 33, "adà@example.com".encode(), b"p2-0001@bench.example"]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_a_key_goes_to_the_partition_aiokafka_chooses() -> None:
    default = DefaultPartitioner()
    for count in (1, 2, 6, 7, 32):
        every = list(range(count))
        for key in (os.urandom(n) for n in range(1, 40)):
            assert default_partition(key, every, every) == default(key, every, every)


def test_no_key_is_any_available_partition() -> None:
    assert default_partition(None, [0, 1, 2], [2]) == 2
