"""The operations page's sparklines: per-minute values into polyline points."""

from services.console.charts import sparkline


def test_a_series_is_scaled_to_its_peak_and_spans_the_width():
    spark = sparkline([0, 5, 10], width=100, height=20, pad=0)
    assert spark.points == "0.0,20.0 50.0,10.0 100.0,0.0"
    assert (spark.total, spark.peak, spark.measured) == (15, 10, 3)


def test_minutes_not_measured_are_gaps_not_zeros():
    spark = sparkline([None, 4, None, 4], width=30, height=10, pad=0)
    assert spark.points == "10.0,0.0 30.0,0.0"
    assert (spark.total, spark.measured) == (8, 2)


def test_nothing_measured_draws_nothing_and_one_minute_draws_a_stroke():
    assert sparkline([None, None]).points == ""
    assert sparkline([]).total == 0
    one = sparkline([None, 3], width=10, height=10, pad=0)
    assert len(one.points.split()) == 2  # visible


def test_all_zero_lies_on_the_baseline():
    assert sparkline([0, 0], width=10, height=10, pad=1).points == "1.0,9.0 9.0,9.0"
