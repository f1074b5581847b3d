/** `edms:limits`: memory and process limits of every container the program or edms-ops starts. */
import { z } from "zod";
import { integer, setting } from "./fields";

/** The containers limits apply to: the stack's services and edms-ops' helper containers. */
export const LIMITED = [
  "postgres",
  "redis",
  "web",
  "worker",
  "proxy",
  "scheduler",
  "helpers",
] as const;
export type Limited = (typeof LIMITED)[number];

/**
 * Defaults sized for the sample EDMS with headroom: PostgreSQL forks a process per connection, gunicorn and
 * celery run two workers each, and helpers run restic (whose index grows with the repository) and
 * pg_restore, which must never be killed half-way through a backup or restore.
 */
export const DEFAULT_LIMITS: Record<Limited, { memoryMb: number; pids: number }> = {
  postgres: { memoryMb: 2048, pids: 512 },
  redis: { memoryMb: 512, pids: 64 },
  web: { memoryMb: 1024, pids: 256 },
  worker: { memoryMb: 1024, pids: 256 },
  proxy: { memoryMb: 256, pids: 128 },
  // It runs restic (backup, prune, the off-host copy) and pg_dump itself: a helper's room.
  scheduler: { memoryMb: 4096, pids: 512 },
  helpers: { memoryMb: 4096, pids: 512 },
};

const limit = (name: Limited) =>
  z
    .object({
      memoryMb: setting(
        integer
          .pipe(z.number().int().min(64, `${name}.memoryMb must be at least 64`))
          .default(DEFAULT_LIMITS[name].memoryMb),
        {
          description: `Memory limit in MiB (swap included); default ${DEFAULT_LIMITS[name].memoryMb}.`,
        },
      ),
      pids: setting(
        integer
          .pipe(z.number().int().min(16, `${name}.pids must be at least 16`))
          .default(DEFAULT_LIMITS[name].pids),
        {
          description: `Most processes and threads at once (edms-ops helpers only, see edms:limits); default ${DEFAULT_LIMITS[name].pids}.`,
        },
      ),
    })
    .strict()
    .prefault({});

export const limitsSchema = z
  .object(
    Object.fromEntries(
      LIMITED.map((name) => [
        name,
        setting(limit(name), {
          description:
            name === "helpers"
              ? "The containers edms-ops starts: backups, restores, drills, migrations."
              : `The ${name} container.`,
        }),
      ]),
    ) as {
      [K in Limited]: ReturnType<typeof limit>;
    },
  )
  .strict();

export const LIMITS_FIX =
  "e.g. `{postgres: {memoryMb: 2048, pids: 512}, helpers: {memoryMb: 4096}}`; services: " +
  LIMITED.join(", ");
