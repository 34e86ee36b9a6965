-- weather: hourly observations per origin airport; event_time time_hour (UTC instant).
--
-- weather_raw.time_hour is stored as a UTC instant already (local hours repeat at the November
-- DST change, so a naive local hour would not be a key). One reading in 2013 reports a wind
-- speed of 1048 mph (a sensor error): speeds above 100 mph are set to NULL rather than kept or
-- dropped, so the hour keeps its other readings.
SELECT
    origin,
    time_hour,
    temp,
    dewp,
    humid,
    CASE WHEN wind_speed > 100 THEN NULL ELSE wind_speed END AS wind_speed,
    CASE WHEN wind_gust > 150 THEN NULL ELSE wind_gust END   AS wind_gust,
    precip,
    visib,
    pressure
FROM weather_raw
