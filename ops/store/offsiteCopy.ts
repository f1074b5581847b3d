/**
 * The off-host copy (`edms:backup.offsite`): every local snapshot the off-host repository lacks is copied
 * there with `restic copy`. It runs after the backup has released the stack lock, in its own container
 * `<prefix>-offsite`, whose unique name is the off-host lock: two copies of one stack never overlap, and
 * a deploy, a restore or the next backup never wait for one.
 *
 * - Append-only: the Docker host never forgets, prunes or removes anything off the host, and never
 *   removes a restic lock there, so its credentials may be ones that cannot delete (`rclone serve restic
 *   --append-only`, rest-server `--append-only`, an S3 key without DeleteObject on data). Retention off the
 *   host is `edms-ops backups prune --offsite`, run elsewhere with credentials that can delete.
 * - The copy reads the local repository without a restic lock (`--no-lock` applies to the source only;
 *   the off-host repository is locked as restic always does), so the local prune and check that the
 *   next operation runs under the stack lock are never refused for it. Should such a prune remove a pack
 *   the copy was reading, the copy fails before it writes that snapshot off the host, and the next one
 *   copies it.
 * - The container writes its own record (offsite-copy.json): `status` and `health` show the last copy's
 *   outcome, what is behind and any lock off the host.
 * - `wait`: the caller waits for the copy (`edms-ops backup`, the scheduler), first for a copy already
 *   running. `background`: the copy is started detached and the caller goes on (the pre-deploy hook,
 *   backups taken inside another operation); when a copy is running already it is asked to run once more.
 */
import { Settings } from "../../model/settings";
import { docker, inspectContainer, run } from "../engine/docker";
import { engineless } from "../engine/engineless";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { readBackupsVolume, backupToolbox, readHeldLock } from "../engine/toolbox";
import { parseJsonOrNull } from "../core/json";
import { progress, warn } from "../core/log";
import { BACKUPS_DIR, LAYOUT } from "./layout";
import { OffsiteCopy, OffsiteCopySchema } from "./records";
import {
  FROM_KEY_HINT,
  NO_REPOSITORY,
  OFFSITE_REPOSITORY_FILE,
  PASSWORD_FILE,
  REPOSITORY,
  RESTIC_PRELUDE,
} from "./restic";

/** restic retries an unreachable backend for many minutes: a copy is bounded by this. */
export const COPY_TIMEOUT_SECONDS = Number(process.env.EDMS_OFFSITE_COPY_TIMEOUT) || 3600;

export const OFFSITE_COPY_ROLE = "offsite-copy";

export function offsiteLockName(settings: Settings): string {
  return `${settings.namePrefix}-offsite`;
}

/** The copy script's refusal: another copy (the scheduler's, which holds the lock without a container) runs. */
const COPY_RUNNING = "edms: an off-host copy is running already";

/**
 * The copy container's script (engineless: the scheduler's own): $1 the stack (restic --host), $2 the timeout, $3
 * restic's words for "no repository there" (it is then created with the local chunker parameters, so copies
 * deduplicate), $4 `wait` or `background`.
 *
 * A copy that waits blocks on the lock until the running one ends, then copies: asking the running one to go
 * again on every poll kept it looping for as long as the waiter waited. One in the background asks once
 * (\`.offsite-again\`) and leaves; it tries twice a second apart first, so a probe's shared lock (status, the
 * scheduler's lag check) is not taken for a running copy.
 */
export const COPY_SCRIPT = `
exec 9>>${LAYOUT.offsiteLock}
if [ "$4" = wait ]; then
  flock -w "$2" 9 || { echo "${COPY_RUNNING}" >&2; exit 75; }
else
  flock -n 9 || { sleep 1; flock -n 9; } || { touch ${LAYOUT.offsiteAgain}; echo "${COPY_RUNNING}" >&2; exit 75; }
fi
host=$1; limit=$2; norepo=$3
record=${LAYOUT.offsiteCopy}; again=${LAYOUT.offsiteAgain}; err=/tmp/copy.err
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
started=$(now)
write() { printf '{"started":"%s","finished":%s,"ok":%s,"error":%s}\\n' "$started" "$1" "$2" "$3" > $record.tmp && mv $record.tmp $record; }
write null null null
copy_once() {
  [ -f ${OFFSITE_REPOSITORY_FILE} ] || { echo "the off-host credentials are not on the host" > $err; return 1; }
  if ! orestic cat config >/dev/null 2>$err; then
    grep -qiE "$norepo" $err || return 1
    orestic init --repository-version 2 --copy-chunker-params --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} ${FROM_KEY_HINT} >/dev/null 2>$err || return 1
  fi
  OTIMEOUT=$limit
  orestic --no-lock copy --from-repo ${REPOSITORY} --from-password-file ${PASSWORD_FILE} ${FROM_KEY_HINT} --host "$host" --tag edms >/dev/null 2>$err
}
ok=true
while :; do
  rm -f $again
  copy_once || { ok=false; break; }
  [ -f $again ] || break
done
if $ok; then
  write "\\"$(now)\\"" true null
else
  line=$( (grep -iE 'fatal|unable|error|denied|refused|locked' $err || grep -v '^\\s' $err) | tail -n 1 | tr -d '\\000-\\037\\\\"' | cut -c1-300)
  write "\\"$(now)\\"" false "\\"\${line:-no answer within $limit s}\\""
  exit 1
fi`;

/** The copy's `sh` arguments: the script and its positional parameters. */
function copyCommand(settings: Settings, detach: boolean): string[] {
  return [
    "-euc",
    `${RESTIC_PRELUDE}\n${COPY_SCRIPT}`,
    "edms-ops",
    settings.stack,
    String(COPY_TIMEOUT_SECONDS),
    NO_REPOSITORY.source,
    detach ? "background" : "wait",
  ];
}

function copyArgs(settings: Settings, detach: boolean): string[] {
  return dockerRunArgs({
    image: settings.backup.image,
    name: offsiteLockName(settings),
    detach,
    remove: true,
    logging: false,
    network: "bridge",
    user: "0",
    entrypoint: "sh",
    labels: opsLabels(settings, OFFSITE_COPY_ROLE),
    mounts: [{ volume: settings.names.backupsVolume, path: BACKUPS_DIR }],
    args: copyCommand(settings, detach),
  });
}

const IN_USE = new RegExp(`already in use|Conflict|${COPY_RUNNING}`, "i");

/** Runs the copy: in its container (detached: its id), or engineless in this process, waiting for it. */
function runCopy(settings: Settings, detach: boolean) {
  if (engineless()) {
    return run("sh", copyCommand(settings, detach), { allowFailure: true });
  }
  return docker(copyArgs(settings, detach), { allowFailure: true });
}

/**
 * Copies what is missing off the host, outside the stack lock. Never throws: a failed copy never fails
 * the backup (the deploy is gated on the local one); `status` and `health` show it.
 */
export async function startOffsiteCopy(
  settings: Settings,
  mode: "wait" | "background",
): Promise<void> {
  const display = settings.backup.offsite?.display;
  const later = `The next backup copies whatever is missing; \`edms-ops status --stack ${settings.stack}\` shows the lag.`;
  try {
    if (mode === "background" && engineless()) {
      // No engine to leave a copy running: the scheduler copies once it has released the stack lock.
      return;
    }
    if (mode === "background") {
      const started = await runCopy(settings, true);
      if (started.code === 0) {
        progress(
          `off-host copy to ${display} started in the background (${offsiteLockName(settings)})`,
        );
      } else if (IN_USE.test(started.stderr)) {
        await backupToolbox(settings, `touch ${LAYOUT.offsiteAgain}`, { writable: true });
        progress(`an off-host copy is running already: it copies this backup too when it ends`);
      } else {
        warn(`off-host copy not started: ${started.stderr.trim().split("\n").pop()}. ${later}`);
      }
      return;
    }
    progress(`copying to the off-host repository ${display}`);
    const deadline = Date.now() + COPY_TIMEOUT_SECONDS * 1000;
    let result = await runCopy(settings, false);
    for (let told = false; IN_USE.test(result.stderr) && Date.now() < deadline; told = true) {
      if (!told) {
        progress("waiting for the off-host copy that is running to end");
      }
      await new Promise((r) => setTimeout(r, 2000));
      result = await runCopy(settings, false);
    }
    if (result.code === 0) {
      progress(`off-host copy complete (${display})`);
    } else {
      const record = await readOffsiteCopy(settings);
      const cause =
        record && record.ok === false
          ? record.error
          : result.stderr.trim().split("\n").pop() || `exit ${result.code}`;
      warn(`off-host copy failed (the local backup is complete): ${cause}. ${later}`);
    }
  } catch (err) {
    warn(
      `off-host copy failed (the local backup is complete): ${(err as Error).message}. ${later}`,
    );
  }
}

/** The newest copy's record, with `running` true while a copy runs (its container, or the scheduler's). */
export async function readOffsiteCopy(
  settings: Settings,
): Promise<(OffsiteCopy & { running: boolean }) | null> {
  const text = await readBackupsVolume(settings, `cat ${LAYOUT.offsiteCopy} 2>/dev/null || true`);
  const record = parseJsonOrNull(text, OffsiteCopySchema);
  if (!record) {
    return null;
  }
  const running =
    (!engineless() && (await inspectContainer(offsiteLockName(settings))).running) ||
    (await readHeldLock(settings, LAYOUT.offsiteLock)) !== null;
  return { ...record, running };
}
