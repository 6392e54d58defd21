"""Tests of dis_logging.retry: capped, jittered backoff with Retry-After and a deadline."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dis_logging.errors import ConfigError
from dis_logging.retry import RetryPolicy


def no_jitter() -> float:
    return 0.5


class TestBackoff:
    @pytest.mark.parametrize(
        ("attempt", "expected"),
        [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (9, 25.6), (10, 30.0), (50, 30.0)],
    )
    def test_grows_exponentially_up_to_the_cap(self, attempt, expected):
        """The delay doubles per attempt from initial_backoff and stops at max_backoff."""
        assert expected == pytest.approx(RetryPolicy().backoff(attempt, rand=no_jitter))

    @pytest.mark.parametrize(("rand", "expected"), [(0.0, 0.8), (0.25, 0.9), (0.999999, 1.2)])
    def test_jitter_spreads_the_delay_by_the_given_fraction(self, rand, expected):
        """With jitter 0.2 the delay lies between 80 % and 120 % of the base delay."""
        policy = RetryPolicy(initial_backoff=1.0, jitter=0.2)
        assert expected == pytest.approx(policy.backoff(1, rand=lambda: rand), abs=1e-5)

    def test_jitter_never_exceeds_max_backoff(self):
        """A delay at the cap stays at the cap even when jitter would push it above."""
        policy = RetryPolicy(max_backoff=5.0, jitter=0.5)
        assert 5.0 == policy.backoff(30, rand=lambda: 0.99)

    def test_zero_jitter_gives_fixed_delays(self):
        """Without jitter the random source has no effect."""
        policy = RetryPolicy(jitter=0.0)
        assert [0.4, 0.4] == [policy.backoff(3, rand=r) for r in (lambda: 0.0, lambda: 0.9)]

    def test_retry_after_longer_than_backoff_is_honoured(self):
        """A server's Retry-After longer than the computed delay is what the caller waits."""
        assert 7.0 == RetryPolicy().backoff(1, retry_after=7.0, rand=no_jitter)

    def test_retry_after_is_capped_at_max_backoff(self):
        """A Retry-After beyond max_backoff is cut to max_backoff."""
        assert 30.0 == RetryPolicy().backoff(1, retry_after=3600.0, rand=no_jitter)

    def test_retry_after_shorter_than_backoff_does_not_shorten_it(self):
        """The computed delay wins over a shorter Retry-After."""
        assert 0.4 == pytest.approx(RetryPolicy().backoff(3, retry_after=0.0, rand=no_jitter))

    def test_negative_retry_after_counts_as_zero(self):
        """A negative Retry-After leaves the computed delay."""
        assert 0.1 == pytest.approx(RetryPolicy().backoff(1, retry_after=-5.0, rand=no_jitter))

    @pytest.mark.parametrize("attempt", [0, -3])
    def test_attempts_below_one_count_as_the_first(self, attempt):
        """Attempt numbers below 1 give the first retry's delay."""
        assert 0.1 == pytest.approx(RetryPolicy().backoff(attempt, rand=no_jitter))

    def test_huge_attempt_numbers_do_not_overflow(self):
        """An attempt number whose power overflows a float gives max_backoff."""
        policy = RetryPolicy(multiplier=10.0, max_backoff=12.0)
        assert 12.0 == policy.backoff(100_000, rand=no_jitter)

    @given(
        attempt=st.integers(min_value=-10, max_value=10_000),
        rand=st.floats(min_value=0.0, max_value=0.9999999),
        retry_after=st.none() | st.floats(min_value=-1e9, max_value=1e9),
    )
    def test_delay_always_lies_between_zero_and_the_cap(self, attempt, rand, retry_after):
        """Whatever the inputs, the delay is within [0, max_backoff]."""
        policy = RetryPolicy()
        delay = policy.backoff(attempt, retry_after, rand=lambda: rand)
        assert 0.0 <= delay <= policy.max_backoff


class TestDeadline:
    def test_deadline_is_start_plus_max_retry_time(self):
        """deadline() adds max_retry_time to the start time."""
        assert 110.0 == RetryPolicy(max_retry_time=10.0).deadline(100.0)

    def test_next_delay_within_the_budget_is_the_backoff(self):
        """A delay that ends before the deadline is returned unchanged."""
        policy = RetryPolicy()
        assert 0.2 == pytest.approx(
            policy.next_delay(2, deadline=policy.deadline(0.0), now=1.0, rand=no_jitter)
        )

    def test_next_delay_past_the_deadline_is_none(self):
        """A delay that would end after the deadline means give up."""
        policy = RetryPolicy(max_retry_time=5.0)
        assert policy.next_delay(10, deadline=policy.deadline(0.0), now=4.9, rand=no_jitter) is None

    def test_zero_max_retry_time_allows_no_retry(self):
        """max_retry_time=0 gives up at the first failure."""
        policy = RetryPolicy(max_retry_time=0.0)
        assert policy.next_delay(1, deadline=policy.deadline(3.0), now=3.0) is None


class TestValue:
    def test_repr_lists_every_setting(self):
        """The repr reads like the constructor call, as urllib3's Retry does."""
        assert (
            "RetryPolicy(initial_backoff=0.1, multiplier=2.0, max_backoff=30.0, jitter=0.2, "
            "max_retry_time=300.0)"
        ) == repr(RetryPolicy())

    def test_is_immutable(self):
        """Assigning to a field raises FrozenInstanceError."""
        policy = RetryPolicy()
        with pytest.raises(dataclasses.FrozenInstanceError):
            policy.jitter = 0.5  # type: ignore[misc]

    def test_replace_derives_a_new_policy(self):
        """dataclasses.replace gives a modified copy and leaves the original alone."""
        policy = RetryPolicy()
        assert (0.2, 30.0) == (policy.jitter, dataclasses.replace(policy, jitter=0.0).max_backoff)

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"initial_backoff": -1.0}, "initial_backoff"),
            ({"max_backoff": float("inf")}, "max_backoff"),
            ({"max_retry_time": float("nan")}, "max_retry_time"),
            ({"multiplier": 0.5}, "multiplier"),
            ({"jitter": 1.5}, "jitter"),
            ({"initial_backoff": 5.0, "max_backoff": 1.0}, "initial_backoff"),
            ({"jitter": "0.2"}, "jitter"),
        ],
    )
    def test_bad_values_raise_config_error_naming_the_field(self, kwargs, field):
        """An out-of-range setting raises ConfigError with the field's name."""
        with pytest.raises(ConfigError) as info:
            RetryPolicy(**kwargs)
        assert field == info.value.field
