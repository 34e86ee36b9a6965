-- airports: static facts per FAA code (joined later on dest); no event time.
SELECT faa, name AS airport_name, lat, lon, alt, tzone
FROM airports_raw
