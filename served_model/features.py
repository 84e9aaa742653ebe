"""The model's features: the columns it takes, which of them may be unknown at scheduled
departure, and the frame it is fed (`model_input`). Shared by training, batch scoring and the
served model; no Dagster, no SQLAlchemy."""

FEATURE_COLUMNS_NUMERIC = [
    "sched_hour",
    "sched_minute",
    "day_of_week",
    "month",
    "day_of_year",
    "is_holiday",
    "days_to_holiday",
    "distance",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
    "weather_available",
    "origin_departures_prev_2h",
    "origin_mean_dep_delay_prev_2h",
    "origin_late_share_prev_2h",
    "origin_waiting_flights",
    "origin_scheduled_prev_1h",
    "tail_prev_dep_delay",
    "tail_legs_before",
    "tail_prev_sched_gap",
    "tail_prev_overdue",
    "tail_prev_distance",
    "tail_prev_landed_ago",
    "tail_prev_arr_delay",
    "carrier_origin_mean_dep_delay_prev_2h",
    "nyc_departures_prev_1h",
    "nyc_mean_dep_delay_prev_1h",
    "origin_mean_dep_delay_today",
    "dest_landed_prev_3h",
    "dest_mean_arr_delay_prev_3h",
]
FEATURE_COLUMNS_CATEGORICAL = ["carrier", "origin", "dest", "route"]
# numeric features that can be unknown at scheduled departure: the origin's weather (no
# observation in the last 3 hours, or a sensor gap), delay averages over no flights, and the
# aircraft's previous delay and leg (first departure of the day, or no tail number)
FEATURE_COLUMNS_MAY_BE_MISSING = [
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
    "origin_mean_dep_delay_prev_2h", "origin_late_share_prev_2h", "tail_prev_dep_delay",
    "tail_prev_sched_gap", "tail_prev_overdue", "tail_prev_distance", "tail_prev_landed_ago", "tail_prev_arr_delay",
    "carrier_origin_mean_dep_delay_prev_2h", "nyc_mean_dep_delay_prev_1h", "origin_mean_dep_delay_today",
    "dest_mean_arr_delay_prev_3h",
]



def model_input(frame):
    """The columns the model takes, in a fixed order and type (a DataFrame)."""
    out = frame[FEATURE_COLUMNS_NUMERIC + FEATURE_COLUMNS_CATEGORICAL].copy()
    for c in FEATURE_COLUMNS_NUMERIC:
        out[c] = out[c].astype(float)
    for c in FEATURE_COLUMNS_CATEGORICAL:
        out[c] = out[c].astype(str)
    return out

FEATURE_COLUMNS = FEATURE_COLUMNS_NUMERIC + FEATURE_COLUMNS_CATEGORICAL
