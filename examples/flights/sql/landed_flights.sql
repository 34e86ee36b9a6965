-- landed_flights: the flights whose outcome is known, stamped with the moment it became known.
--
-- event_time is landed_at, not the scheduled departure: a row exists in this feature group's
-- history only from the (approximate) landing onwards. Aggregations over it (route and carrier
-- delay history) therefore only ever count flights that had landed by the aggregate's own time,
-- and a point-in-time join at a later flight's scheduled departure only sees aggregates of
-- flights that had landed before that departure — never the outcome being predicted.
-- Cancelled and diverted flights never land, so they are not counted.
SELECT
    flight_id,
    landed_at,
    origin,
    dest,
    carrier,
    CAST(is_delayed AS INTEGER) AS delayed,      -- 0/1 so that mean() is the delay rate
    arr_delay
FROM flights
WHERE landed_at IS NOT NULL
