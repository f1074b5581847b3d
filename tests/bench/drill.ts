/**
 * Benchmark: what `edms-ops drill` (and so the production deploy's preDeployDrill hook) costs, next to the
 * raw `pg_restore` of the same dump into a scratch server. Prints seconds and ratios; asserts nothing.
 *
 *   npm run bench:drill               1 GiB of media (EDMS_BENCH_GIB="1"), 1,000,000 rows
 *
 * Raw: the backup's own db.dump (taken out of the snapshot with `restic dump`) restored by `pg_restore
 * --single-transaction` into a scratch server of the same image; shown with and without the server's start.
 * Drill: the whole command (CLI start, lock, manifest, scratch server, streamed pg_restore with sha256, row
 * counts, migration state, media restore with --verify, media checksums, the release's container and its
 * `manage.py check` and `migrate --check`, the record). The first drill of a stack checksums every media
 * file; later ones a sample plus what changed.
 */
