/**
 * Throwaway PostgreSQL servers (no network unless a drill gives one, trust auth inside, removed with their
 * data afterwards) that verify test-restores a dump into and a drill restores a backup into.
 */
import { randomBytes } from "crypto";
import { Settings } from "../../model/settings";
import { PGDATA } from "../../model/containers";
import {
  SCRATCH_ENV,
  SCRATCH_READY,
  SCRATCH_WRAPPER,
  scratchTemplate,
  TEMPLATE_DIR,
} from "./scratchTemplate";
import { CONFINEMENT } from "../../model/hardening";
import { docker, removeByRole } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { failure } from "../core/errors";
import { FREE_SCRATCH_ROOM, hostFailure, hostFaultLine } from "../core/hostFault";
import { STAGE_DIR, stageVolume } from "../store/restic";
import { cleanupOnSignal } from "../core/signals";

const SCRATCH_FIX =
  "Check that `edms:postgresImage` starts on the host (`docker logs` of the scratch container) and that the disk has room, then retry.";

/**
 * Waits until a scratch server (official-image contract) has finished initdb and accepts connections: in one
 * exec that polls inside the container, ready once the server answers on TCP loopback, which the entrypoint's
 * temporary init server never listens on (`listen_addresses=''`). Polling from here cost two docker CLI
 * starts (its log, its state) every half second for the seconds initdb takes.
 */
export async function waitForScratch(name: string): Promise<void> {
  const ready = await docker(
    [
      "exec",
      name,
      "sh",
      "-c",
      `i=0; until ${SCRATCH_READY}; do i=$((i + 1)); [ "$i" -lt 600 ] || exit 1; sleep 0.1; done`,
    ],
    { allowFailure: true },
  );
  if (ready.code === 0) {
    return;
  }
  const [logs, state] = await Promise.all([
    docker(["logs", name], { allowFailure: true }),
    docker(["inspect", "-f", "{{.State.Running}}", name], { allowFailure: true }),
  ]);
  if (state.stdout.trim() !== "true") {
    const said = (logs.stderr || logs.stdout).trim();
    const fault = hostFaultLine(said);
    if (fault) {
      throw hostFailure(
        `The scratch database stopped on the host, not on the backup: ${fault}`,
        FREE_SCRATCH_ROOM,
      );
    }
    throw failure(`scratch database exited: ${said.split("\n").pop()}`, SCRATCH_FIX);
  }
  throw failure("scratch database did not start within 60s", SCRATCH_FIX);
}

/** A throwaway PostgreSQL with no network and trust auth; removed (with its volume) afterwards. */
export async function withScratchDatabase<T>(
  settings: Settings,
  fn: (name: string) => Promise<T>,
  /** A network of its own (a drill's, where the release's code reaches it by name); default none. */
  network = "none",
  /** Where its files go (a drill's `edms:backup.drillScratch` folder); default its own volume. */
  dataDir?: string,
): Promise<T> {
  const scratch = startScratchDatabase(settings, network, dataDir);
  try {
    await scratch.ready;
    return await fn(scratch.name);
  } finally {
    await scratch.remove();
  }
}

export interface ScratchServer {
  readonly name: string;
  /** Resolves once the server answers; rejects when it cannot start (SCRATCH_FIX). */
  readonly ready: Promise<void>;
  /** Removes it (with its volume) once `docker run` has created it, or failed to; once, however often called. */
  remove(): Promise<void>;
}

/** withScratchDatabase's server, started now: its start and initdb (seconds) need nothing of a backup. */
export function startScratchDatabase(
  settings: Settings,
  network = "none",
  dataDir?: string,
): ScratchServer {
  const name = `${settings.namePrefix}-scratch-${randomBytes(3).toString("hex")}`;
  const created = (async () => {
    // Leftovers of killed runs first: trust-auth servers must not pile up.
    const [, template] = await Promise.all([
      removeByRole(settings.stack, "scratch-db"),
      scratchTemplate(settings, settings.postgresImage),
    ]);
    await docker(
      dockerRunArgs({
        image: template?.image ?? settings.postgresImage,
        name,
        detach: true,
        network,
        // Its log says why, when it does not start (waitForScratch) or goes away (restoreFailed). A failed
        // statement's CONTEXT there may echo a row: only hostFaultLine's lines, never echoes, are copied out.
        labels: opsLabels(settings, "scratch-db"),
        env: [...SCRATCH_ENV, ...(dataDir ? ["PGDATA=/scratch-pgdata/data"] : [])],
        ...(template
          ? {
              entrypoint: "sh",
              args: ["-c", SCRATCH_WRAPPER, "edms-scratch", TEMPLATE_DIR, ...template.command],
            }
          : {}),
        mounts: [
          ...(dataDir ? [{ volume: dataDir, path: "/scratch-pgdata" }] : []),
          ...(template ? [{ volume: template.volume, path: TEMPLATE_DIR, readOnly: true }] : []),
          // The session's stage, read-only: the dump it restores is put there (restoreIntoScratch).
          { volume: stageVolume(settings.namePrefix), path: STAGE_DIR, readOnly: true },
        ],
        // PostgreSQL's capabilities; nothing is copied in, so its root is read-only and its data directory
        // an anonymous volume (`rm -v` below).
        confinement: { ...CONFINEMENT.postgres, readOnly: true },
        scratchPaths: dataDir ? [] : [PGDATA],
        limits: settings.limits.helpers,
      }),
    );
  })();
  const ready = created.then(() => waitForScratch(name));
  // Handled here too: a caller that never waits for it (its backup could not be read) removes it all the same,
  // once `docker run` has created it (or failed to): not after initdb, which its removal ends.
  ready.catch(() => undefined);
  const settled = created.catch(() => undefined);
  let removed: Promise<void> | undefined;
  return {
    name,
    ready,
    // Once: a verify removes it after its test-restore, and again on its way out.
    remove: () =>
      (removed ??= settled.then(async () => {
        await docker(["rm", "-f", "-v", name], { allowFailure: true });
      })),
  };
}

/**
 * startScratchDatabase for a verify: until `remove`, a signal (Ctrl-C, a dropped ssh session), which ends
 * edms-ops at once, removes the server first, a copy of the database with trust auth. What a SIGKILL leaves,
 * the next session on the stack removes (clearLeftovers). A drill's scratch space has its own (inScratch).
 */
export function scratchRemovedOnSignal(settings: Settings): ScratchServer {
  const scratch = startScratchDatabase(settings);
  const stopWatching = cleanupOnSignal(() => scratch.remove());
  return {
    ...scratch,
    remove: async () => {
      stopWatching();
      await scratch.remove();
    },
  };
}
