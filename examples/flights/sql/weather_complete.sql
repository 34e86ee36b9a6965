-- weather_complete: the weather hours where temp, dewp, humid and pressure are all known.
-- The PCA built-in needs complete rows; pressure is missing for about 10% of hours.
SELECT origin, time_hour, temp, dewp, humid, pressure
FROM weather
WHERE temp IS NOT NULL AND dewp IS NOT NULL AND humid IS NOT NULL AND pressure IS NOT NULL
