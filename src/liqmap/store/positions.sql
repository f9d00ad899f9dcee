-- liqmap store -> per-minute `positions` rows, in DuckDB (>= 1.0), exactly as
-- `liqmap.store.Store.read_positions` returns them.
--
--   duckdb.sql(open(liqmap.store.sql.SQL_PATH).read())       -- or liqmap.store.sql.positions_sql()
--   select * from liqmap_positions('/srv/liqmap', 'SOL') where ts >= '2026-11-01';
--
-- Closed days are stored as position VERSIONS (position_versions/market=…/date=…/day-….parquet):
-- one row per account state, valid in every committed snapshot minute of [valid_from, valid_to].
-- The per-minute columns (ts, slot, close_fee_usd, borrow_fee_usd, liq_price) follow from the
-- snapshot's market_state row with Jupiter's formula in integer USD-6 / RATE-9 arithmetic
-- (HUGEINT for the 128-bit products), the same rounding as liqmap.jupiter.perps. Versions with
-- interest_source = -1 carry their values as collected.
--
-- liqmap_version_rows(root, market): the rows of the converted days only.
-- liqmap_positions(root, market): those plus the rows of days still in the row layout (open
--   days, or days that could not be converted); needs both kinds of files to exist (DuckDB
--   refuses a glob matching nothing; use liqmap_version_rows, or read positions/ directly).

-- floor (or ceil when `up`) of a*b/d, capped at 2^52 like perps.USD6_CAP
CREATE OR REPLACE MACRO liqmap_mul_div(a, b, d, up) AS
    CASE WHEN (a::DOUBLE * b::DOUBLE) / d::DOUBLE >= 4503599627370496.0
         THEN 4503599627370496::HUGEINT
         ELSE least(CASE WHEN up THEN (a::HUGEINT * b::HUGEINT + d::HUGEINT - 1) // d::HUGEINT
                         ELSE (a::HUGEINT * b::HUGEINT) // d::HUGEINT END,
                    4503599627370496::HUGEINT)
    END;

-- one row per committed snapshot (the market_state row is the commit record)
CREATE OR REPLACE MACRO liqmap_snapshots(root, mkt) AS TABLE
    SELECT DISTINCT ON (ts) ts, positions_slot, decrease_position_bps, trade_impact_fee_scalar,
           max_leverage_bps,
           [cumulative_interest_rate_now, usdc_cumulative_interest_rate_now,
            usdt_cumulative_interest_rate_now] AS counters
    FROM read_parquet(root || '/market_state/market=' || mkt || '/*/*.parquet',
                      union_by_name = true, hive_partitioning = false);

CREATE OR REPLACE MACRO liqmap_version_rows(root, mkt) AS TABLE
WITH v AS (
    SELECT * FROM read_parquet(root || '/position_versions/market=' || mkt || '/*/*.parquet',
                               union_by_name = true, hive_partitioning = false)
), minutes AS (
    SELECT v.*, s.ts AS minute, s.positions_slot, s.decrease_position_bps AS dec_bps,
           s.trade_impact_fee_scalar AS impact_scalar, s.max_leverage_bps AS max_lev,
           CASE WHEN v.interest_source >= 0 THEN s.counters[v.interest_source + 1] END AS cum_now
    FROM v JOIN liqmap_snapshots(root, mkt) s ON s.ts BETWEEN v.valid_from AND v.valid_to
), fees AS (
    SELECT *,
           liqmap_mul_div(size_usd6, 10000, greatest(max_lev, 1), false) AS maint,
           liqmap_mul_div(size_usd6, dec_bps + CASE WHEN impact_scalar > 0
               THEN liqmap_mul_div(size_usd6, 10000, impact_scalar, true) ELSE 0 END,
               10000, false) AS close_fee,
           liqmap_mul_div(CASE WHEN cum_now > cumulative_interest_snapshot
                               THEN cum_now::HUGEINT - cumulative_interest_snapshot ELSE 0 END,
                          size_usd6, 1000000000, true) AS borrow_fee
    FROM minutes
), gaps AS (
    SELECT *, collateral_usd6 >= maint + close_fee + borrow_fee AS solvent,
           liqmap_mul_div(abs(collateral_usd6::HUGEINT - (maint + close_fee + borrow_fee)),
                          entry_price_usd6, size_usd6, false) AS gap
    FROM fees
)
SELECT minute AS ts,
       CASE WHEN interest_source >= 0 THEN positions_slot ELSE slot END AS slot,
       pubkey, owner, side,
       entry_price_usd6::DOUBLE / 1e6::DOUBLE AS entry_price,
       size_usd6::DOUBLE / 1e6::DOUBLE AS size_usd,
       collateral_usd6::DOUBLE / 1e6::DOUBLE AS collateral_usd,
       size_tokens,
       CASE WHEN interest_source >= 0 THEN borrow_fee::DOUBLE / 1e6::DOUBLE
            ELSE borrow_fee_usd END AS borrow_fee_usd,
       CASE WHEN interest_source >= 0 THEN close_fee::DOUBLE / 1e6::DOUBLE
            ELSE close_fee_usd END AS close_fee_usd,
       CASE WHEN interest_source >= 0 THEN greatest(
                CASE WHEN (side = 'long') = solvent THEN entry_price_usd6::HUGEINT - gap
                     ELSE entry_price_usd6::HUGEINT + gap END, 0)::DOUBLE / 1e6::DOUBLE
            ELSE liq_price END AS liq_price,
       leverage, collateral_custody, cumulative_interest_snapshot, open_time, update_time
FROM gaps;

CREATE OR REPLACE MACRO liqmap_positions(root, mkt) AS TABLE
WITH converted AS (
    SELECT DISTINCT regexp_extract(filename, 'date=([0-9-]+)', 1) AS day
    FROM read_parquet(root || '/position_versions/market=' || mkt || '/*/*.parquet',
                      filename = true, hive_partitioning = false)
), row_files AS (
    SELECT * EXCLUDE (filename), regexp_extract(filename, 'date=([0-9-]+)', 1) AS day
    FROM read_parquet(root || '/positions/market=' || mkt || '/*/*.parquet',
                      filename = true, union_by_name = true, hive_partitioning = false)
)
SELECT * FROM liqmap_version_rows(root, mkt)
UNION ALL
SELECT DISTINCT ON (r.ts, r.pubkey) r.* EXCLUDE (day)
FROM row_files r SEMI JOIN liqmap_snapshots(root, mkt) s ON r.ts = s.ts
WHERE r.day NOT IN (SELECT day FROM converted);
