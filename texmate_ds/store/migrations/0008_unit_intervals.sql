-- 8: how often a unit is expected to upload, for its status on the home
-- page and displays (texmate_ds/status.py). expected_interval: seconds,
-- set in the admin (NULL: none). usual_interval: microseconds of the
-- meter's clock, the median spacing of its newest 21 samples' timestamps,
-- kept by the store as samples come (store/samples.py). Here it starts as
-- their mean spacing (a median over a correlated window is more than one
-- SQL statement can say); a unit's next upload makes it the median.
ALTER TABLE units ADD COLUMN expected_interval INTEGER;
ALTER TABLE units ADD COLUMN usual_interval INTEGER;
UPDATE units SET usual_interval = (
    SELECT (max(ts) - min(ts)) / (count(*) - 1)
    FROM (SELECT ts FROM samples WHERE unit_id = units.id ORDER BY ts DESC LIMIT 21) AS newest
    HAVING count(*) > 1);
