-- Guest CPU time of each attempt (microseconds of its threads' CPU clocks);
-- NULL for attempts recorded before it was kept or that ran no guest.
ALTER TABLE attempts ADD COLUMN cpu_us INTEGER;
