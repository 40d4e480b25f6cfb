-- The core of vigie's version-1 metrics written as DuckDB SQL, for the
-- side-by-side benchmark (bench/run.sh) and as an independent cross-check
-- of vigie's figures. Same definitions as docs/metrics.md: de-duplication
-- by event_id, shifts from markers or 3 h gaps of activity, declared
-- breaks, stretches cut by breaks of 20 min or more, effective time, ISO
-- weeks of the shift's local start. The table function that reads the input
-- (bench/duckdb_source.py) is substituted for __SOURCE__ and the time zone
-- of its `ts` column for __TZ__.
--
-- One statement of common table expressions, which DuckDB plans and
-- pipelines as a whole: the fastest formulation found so far (the same
-- steps as temporary tables took 37 s and 6.9 GB at 10 M events, this one
-- 20 s and 3.3 GB, docs/benchmarks.md).

WITH ev AS (
SELECT DISTINCT ON (event_id)
    event_id,
    epoch_us(ts) AS ts_us,
    epoch_us(timezone('__TZ__', ts)) AS local_us,
    site, worker, kind, team,
    coalesce(quantity, 1) AS quantity,
    threshold_s,
    CASE kind WHEN 'shift_start' THEN 0 WHEN 'shift_end' THEN 1 WHEN 'break_start' THEN 2
              WHEN 'break_end' THEN 3 WHEN 'scan' THEN 4 WHEN 'voice_prompt' THEN 5
              WHEN 'idle_flag' THEN 6 WHEN 'speed_flag' THEN 7 WHEN 'justification_request' THEN 8
              ELSE 9 END AS kord
FROM __SOURCE__
),

w1 AS (
SELECT *,
    kord <= 5 AS act,
    coalesce(last_value(CASE WHEN kord IN (0, 1) THEN kord END IGNORE NULLS)
        OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 1) = 0 AS open_before,
    coalesce(last_value(CASE WHEN kord IN (0, 1, 2, 3) THEN kord END IGNORE NULLS)
        OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 1) = 2 AS in_break_before,
    last_value(CASE WHEN kord <= 5 THEN ts_us END IGNORE NULLS)
        OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_act_ts,
    last_value(CASE WHEN kord <= 5 THEN kord END IGNORE NULLS)
        OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_act_kord,
    last_value(CASE WHEN kord = 2 THEN ts_us END IGNORE NULLS)
        OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_break_start
FROM ev
),

w2 AS (
SELECT *,
    act AND (prev_act_ts IS NULL OR kord = 0 OR prev_act_kord = 1
             OR (ts_us - prev_act_ts >= 10800000000 AND NOT open_before)) AS new_shift
FROM w1
),

w3 AS (
SELECT *,
    CASE WHEN NOT act AND prev_act_ts IS NULL THEN NULL
         ELSE sum(new_shift::INT) OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS UNBOUNDED PRECEDING) END AS shift_no,
    act AND (NOT in_break_before OR kord = 3) AS kept
FROM w2
),

-- Stretches: kept activity, cut at a new shift or a gap of 20 min or more.
kept AS (
SELECT site, worker, shift_no, ts_us, new_shift, kord, in_break_before, prev_kept,
    sum(CASE WHEN new_shift OR prev_kept IS NULL OR ts_us - prev_kept >= 1200000000 THEN 1 ELSE 0 END)
        OVER (PARTITION BY site, worker ORDER BY ts_us, kord ROWS UNBOUNDED PRECEDING) AS stretch_no
FROM (
    SELECT *, lag(ts_us) OVER (PARTITION BY site, worker ORDER BY ts_us, kord) AS prev_kept
    FROM w3 WHERE kept
)
),

-- Undeclared stops of 20 min or more between kept events: breaks by the
-- lower bound of effective time, work by its upper bound.
inferred AS (
SELECT site, worker, shift_no, sum(ts_us - prev_kept) AS inferred_us
FROM kept
WHERE NOT new_shift AND prev_kept IS NOT NULL AND ts_us - prev_kept >= 1200000000
    AND NOT (kord = 3 AND in_break_before)
GROUP BY ALL
),

longest AS (
SELECT site, worker, shift_no, max(len) AS longest_us, arg_min(len, stretch_no) AS first_us FROM (
    SELECT site, worker, shift_no, stretch_no, max(ts_us) - min(ts_us) AS len
    FROM kept GROUP BY ALL
) GROUP BY ALL
),

-- Scan intervals within a shift.
scans AS (
SELECT site, worker, shift_no,
    ts_us - lag(ts_us) OVER (PARTITION BY site, worker, shift_no ORDER BY ts_us, kord) AS iv
FROM w3 WHERE kord = 4
),

shifts AS (
SELECT s.*, l.longest_us, l.first_us, s.end_us - s.start_us - s.break_us AS effective_us,
    greatest(s.end_us - s.start_us - s.break_us - coalesce(i.inferred_us, 0), 0) AS lower_us
FROM (
    SELECT site, worker, shift_no,
        min(ts_us) FILTER (WHERE act) AS start_us,
        max(ts_us) FILTER (WHERE act) AS end_us,
        arg_min(local_us, ts_us) FILTER (WHERE act) AS local_start_us,
        coalesce(sum(ts_us - last_break_start) FILTER (WHERE kord = 3 AND in_break_before), 0) AS break_us,
        sum(quantity) FILTER (WHERE kord = 4) AS units,
        count(*) FILTER (WHERE kord = 4) AS n_scans,
        count(*) FILTER (WHERE kord = 8) AS justifications,
        count(*) FILTER (WHERE kord IN (6, 8) AND in_break_before) AS flags_in_breaks,
        count(*) FILTER (WHERE kord = 7) AS speed_flags,
        min(coalesce(threshold_s, (ts_us - prev_act_ts) / 1e6)) FILTER (WHERE kord = 6) AS idle_min_s
    FROM w3 WHERE shift_no IS NOT NULL GROUP BY ALL
) s JOIN longest l USING (site, worker, shift_no)
LEFT JOIN inferred i USING (site, worker, shift_no)
),

weeks AS (
SELECT *, strftime(make_timestamp(local_start_us), '%G-W%V') AS week,
    CAST(make_timestamp(local_start_us) AS DATE) AS day FROM shifts
)

-- The site-level figures of findings.json, summed over weeks where the
-- rule is weekly.
SELECT
    (SELECT count(*) FROM ev) AS events,
    (SELECT count(*) FROM shifts) AS shifts,
    -- French law: a break is due once daily work reaches 6 h (L3121-16),
    -- so the work before the first break of a working day (the shifts that
    -- start on one local date) may not reach 6 h.
    (SELECT count(*) FROM (
        SELECT site, worker, day, arg_min(first_us, start_us) AS f FROM weeks GROUP BY ALL
     ) WHERE f >= 21600000000) AS break_after_6h,
    -- Rest between two working days (a shift's day is the local date it
    -- starts on), and the effective time of a working day, its shifts
    -- summed, by its lower bound (what findings.json counts as observed).
    (SELECT count(*) FROM (
        SELECT start_us - lag(end_us) OVER w AS rest, day <> lag(day) OVER w AS new_day FROM weeks
        WINDOW w AS (PARTITION BY site, worker ORDER BY start_us)
     ) WHERE new_day AND rest < 39600000000) AS daily_rest_11h,
    (SELECT count(*) FROM (
        SELECT site, worker, day, sum(lower_us) AS e FROM weeks GROUP BY ALL
     ) WHERE e > 36000000000) AS daily_max_10h,
    (SELECT count(*) FROM (
        SELECT site, worker, week, sum(lower_us) AS e FROM weeks GROUP BY ALL
     ) WHERE e > 172800000000) AS weekly_max_48h,
    (SELECT min(idle_min_s) FROM shifts) AS idle_flag_threshold,
    (SELECT sum(flags_in_breaks) FROM shifts) AS flags_during_breaks,
    (SELECT round(avg((justifications > 0)::INT), 4) FROM shifts) AS justification_burden,
    (SELECT sum(speed_flags) FROM shifts) AS speed_flags,
    (SELECT round(avg((iv < 1250000)::INT), 4) FROM scans WHERE iv IS NOT NULL) AS rush_share,
    (SELECT round(median(units / (effective_us / 3.6e9)), 2) FROM shifts
      WHERE n_scans > 0 AND effective_us > 0) AS median_uph;
