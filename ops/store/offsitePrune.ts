/**
 * Retention in the off-host repository: `edms-ops backups prune --offsite`. The Docker host copies with
 * credentials that cannot delete (offsiteCopy.ts), so forgetting there is this separate, explicit
 * command, meant for a trusted machine or a CI job holding credentials that can. They come from its
 * environment only (EDMS_RESTIC_PASSWORD, EDMS_OFFSITE_DELETE_REPOSITORY, EDMS_OFFSITE_DELETE_ENV: not the
 * names other commands store on the host as its append-only credentials) and are never stored
 * on the host, unlike the keys other commands take from there: they reach one throwaway restic container
 * as a tar stream on stdin, and go with it. That container runs on the stack's Docker host unless `engine`
 * (`--restic-host`) names another, e.g. the trusted machine's own: then the delete credentials never reach the
 * stack's host at all. The decision is the same retention policy as on the host.
 */
import { Settings } from "../../model/settings";
import { docker } from "../engine/docker";
import { dockerRunArgs, opsLabels } from "../engine/dockerRun";
import { tarball } from "../engine/tarball";
import { failure, refuse } from "../core/errors";
import { progress } from "../core/log";
import { DELETE_OFFSITE, keysFromEnv } from "./keys";
import { retentionFacts } from "./prune";
import { BackupEntry, envFileLine, FORGET_AND_PRUNE, parseSnapshots } from "./restic";
import { retention, RetentionDecision } from "./retention";

const PRUNE_TIMEOUT_SECONDS = Number(process.env.EDMS_OFFSITE_COPY_TIMEOUT) || 3600;

/** The container's script: the keys from stdin into its own filesystem, then `$1` on the repository. */
const SCRIPT = `
umask 077; mkdir -p /tmp/k; tar -x -C /tmp/k
set -a; . /tmp/k/env; set +a
R() { timeout "$T" restic --no-cache --repository-file /tmp/k/repository --password-file /tmp/k/password "$@"; }
T=60
case "$1" in
  list) R snapshots --json --tag edms ;;
  forget) T=$2; shift 2; R ${FORGET_AND_PRUNE} "$@" >/dev/null ;;
esac`;

async function offsiteRestic(settings: Settings, args: readonly string[], engine?: string) {
  const keys = keysFromEnv(process.env, DELETE_OFFSITE);
  if (!keys.password || !keys.offsiteRepository) {
    // Set by a job written for the names these credentials had before: said, so it does not fail silently.
    const renamed = process.env.EDMS_OFFSITE_REPOSITORY
      ? ` EDMS_OFFSITE_REPOSITORY is set, but it names the host's append-only credentials (any other command stores it on the host); the ones that may delete go in ${DELETE_OFFSITE.repository} and ${DELETE_OFFSITE.env}.`
      : "";
    throw refuse(
      `Off-host \`backups prune --offsite\` and \`backups forget --offsite\` take the credentials from the environment only, never from the Docker host (whose credentials should not be able to delete).${renamed} Nothing was changed.`,
      `Run it where credentials that can delete are kept, with EDMS_RESTIC_PASSWORD="$(pulumi stack output backupPassword --show-secrets --stack ${settings.stack})", ${DELETE_OFFSITE.repository} and ${DELETE_OFFSITE.env} set (their own names: any other edms-ops command stores EDMS_OFFSITE_REPOSITORY and EDMS_OFFSITE_ENV on the host).`,
    );
  }
  const env = Object.entries(keys.offsiteEnv ?? {}).map(([k, v]) => envFileLine(k, v));
  const input = await tarball([
    { name: "password", content: keys.password, mode: 0o600 },
    { name: "repository", content: keys.offsiteRepository, mode: 0o600 },
    { name: "env", content: env.join("\n") + "\n", mode: 0o600 },
  ]);
  const run = dockerRunArgs({
    image: settings.backup.image,
    args: ["-euc", SCRIPT, "edms-ops", ...args],
    remove: true,
    stdin: true,
    logging: false,
    network: "bridge",
    user: "0",
    entrypoint: "sh",
    labels: opsLabels(settings, "offsite-prune"),
  });
  const result = await docker(run, { input, allowFailure: true, dockerHost: engine });
  if (result.code !== 0) {
    const where = engine ? ` (restic run by the Docker engine at ${engine})` : "";
    throw failure(
      `restic failed on the off-host repository${where}: ${result.stderr.trim().split("\n").pop() || `exit ${result.code}`}. Nothing more was forgotten than it says.`,
      "Check the credentials (they must be allowed to delete) and any lock `edms-ops status` shows, then retry.",
    );
  }
  return result.stdout;
}

export interface OffsitePruneResult {
  readonly decision: RetentionDecision;
  readonly forgotten: string[];
}

/** Applies the retention policy to the off-host repository; with `dryRun` only says what it would do. */
export async function pruneOffsite(
  settings: Settings,
  dryRun: boolean,
  /** The Docker engine that runs restic with the delete credentials; default the stack's host. */
  engine?: string,
): Promise<OffsitePruneResult> {
  const remote: BackupEntry[] = parseSnapshots(await offsiteRestic(settings, ["list"], engine));
  // The same facts as the host's own retention: rollback targets, the last deploy (undo backups it has
  // not superseded), an unfinished restore's undo.
  const decision = retention({
    backups: remote,
    keep: settings.backup.keep,
    pinned: [],
    periodic: settings.backup,
    now: new Date().toISOString(),
    ...(await retentionFacts(settings)),
  });
  for (const kept of decision.keep) {
    progress(`off-host retention: keeps ${kept.entry.id}: ${kept.why}`);
  }
  if (!decision.forget.length || dryRun) {
    return { decision, forgotten: [] };
  }
  const ids = decision.forget.map((b) => b.id);
  progress(`off-host retention: forgetting ${ids.join(", ")}`);
  await offsiteRestic(
    settings,
    ["forget", String(PRUNE_TIMEOUT_SECONDS), ...decision.forget.map((b) => b.snapshot)],
    engine,
  );
  return { decision, forgotten: ids };
}

/** `backups forget <id> --offsite`: forgets every off-host snapshot of `id`; how many there were. */
export async function forgetOffsiteById(
  settings: Settings,
  id: string,
  engine?: string,
): Promise<number> {
  const found = parseSnapshots(await offsiteRestic(settings, ["list"], engine)).filter(
    (b) => b.id === id,
  );
  if (found.length) {
    progress(
      `forgetting ${id} off the host (snapshot ${found.map((b) => b.snapshot.slice(0, 8)).join(", ")})`,
    );
    await offsiteRestic(
      settings,
      ["forget", String(PRUNE_TIMEOUT_SECONDS), ...found.map((b) => b.snapshot)],
      engine,
    );
  }
  return found.length;
}
