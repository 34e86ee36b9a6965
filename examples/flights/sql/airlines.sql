-- airlines: carrier code -> full name; no event time.
SELECT carrier, name AS carrier_name
FROM airlines_raw
