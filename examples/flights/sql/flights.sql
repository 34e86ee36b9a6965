-- flights: one row per scheduled flight; the spine of the (later) training feature view.
--
-- sched_dep_ts (event_time) is the scheduled departure as a UTC instant: year/month/day and the
-- hhmm sched_dep_time are New York wall-clock values, so we build a naive TIMESTAMP and read it
-- in America/New_York with timezone(); with the session in UTC that yields the UTC instant.
-- (No 2013 flight is scheduled inside a DST gap or overlap; DuckDB would resolve an ambiguous
-- 01:30 on 2013-11-03 to the later, EST, instant.)
--
-- Outcome columns — known only once the flight has happened, never model features:
--   is_delayed   label: arrived more than 15 minutes late. Cancelled flights (no dep_delay) and
--                diverted flights (departed, no arr_delay) count as delayed: the passenger did
--                not reach the destination on time. is_cancelled / is_diverted tell them apart,
--                so a feature view can filter them out instead.
--   arr_delay    minutes (NULL when cancelled or diverted).
--   landed_at    approximate wheels-on time in UTC: scheduled departure + dep_delay + air_time
--                minutes. It omits taxi-out (so it errs early by a few minutes: the gate arrival
--                is later still) and is NULL for cancelled and diverted flights.
SELECT
    strftime(make_date(f.year, f.month, f.day), '%Y%m%d')
        || '-' || f.carrier
        || '-' || CAST(f.flight AS VARCHAR)
        || '-' || f.origin
        || '-' || lpad(CAST(f.sched_dep_time AS VARCHAR), 4, '0')          AS flight_id,
    f.sched_dep_ts,
    f.origin,
    f.dest,
    f.carrier,
    f.flight,
    f.tailnum,
    CAST(f.distance AS INTEGER)                                           AS distance,
    CAST(f.sched_dep_time AS INTEGER)                                     AS sched_dep_time,
    (f.arr_delay IS NULL OR f.arr_delay > 15)                             AS is_delayed,
    CAST(f.arr_delay AS INTEGER)                                          AS arr_delay,
    (f.dep_delay IS NULL)                                                 AS is_cancelled,
    (f.dep_delay IS NOT NULL AND f.arr_delay IS NULL)                     AS is_diverted,
    f.sched_dep_ts + CAST(f.dep_delay + f.air_time AS INTEGER) * INTERVAL '1' MINUTE
                                                                          AS landed_at
FROM (
    SELECT
        *,
        timezone(
            'America/New_York',
            make_timestamp(year, month, day, sched_dep_time // 100, sched_dep_time % 100, 0)
        ) AS sched_dep_ts
    FROM flights_raw
) AS f
