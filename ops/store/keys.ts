/**
 * The repository password and the off-host credentials on the Docker host. Their source of truth is the
 * Pulumi stack (generated `backupPassword` output, `edms:backup.offsite` secrets); the `backupInit` hook
 * hands them to `edms-ops backups init` through its environment, and any command given
 * EDMS_RESTIC_PASSWORD / EDMS_OFFSITE_REPOSITORY / EDMS_OFFSITE_ENV stores them too (disaster recovery on a
 * new host). Credentials that may delete off the host have variables of their own (DELETE_OFFSITE), which
 * nothing stores. On the host they are root-only files in the backups volume, handed over as a tar stream on
 * stdin: never argv, never container env, never printed.
 */
import { Settings } from "../../model/settings";
import {
  rcloneParameters,
  RCLONE_PARAMETERS_FIX,
  RCLONE_PARAMETERS_PROBLEM,
} from "../../model/config/backup";
import { volumeExists } from "../engine/docker";
import { refuse } from "../core/errors";
import {
  envFileLine,
  KEY_HINT,
  KEYS_DIR,
  OFFSITE_ENV_FILE,
  OFFSITE_REPOSITORY_FILE,
  PASSWORD_FILE,
  REPOSITORY,
} from "./restic";
import { tarball, TarEntry } from "../engine/tarball";
import { backupToolbox } from "../engine/toolbox";
import { KEY_FILES } from "./layout";
import { z } from "zod";
import { tryParseJson } from "../core/json";

export interface KeysFromEnv {
  readonly password?: string;
  readonly offsiteRepository?: string;
  readonly offsiteEnv?: Record<string, string>;
}

export function keysFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  names: { readonly repository: string; readonly env: string } = STORED_OFFSITE,
): KeysFromEnv {
  let offsiteEnv: Record<string, string> | undefined;
  const given = env[names.env];
  if (given) {
    const parsed = tryParseJson(given, z.record(z.string(), z.string()));
    if (parsed.ok) {
      offsiteEnv = parsed.value;
    } else {
      throw refuse(
        `${names.env} is not a JSON object of variables. Nothing was changed.`,
        `Pass e.g. ${names.env}='{"AWS_ACCESS_KEY_ID": "…"}'.`,
      );
    }
  }
  const offsiteRepository = env[names.repository] || undefined;
  // A secret value reaches edms-ops only here: the stack file's check never saw it.
  if (offsiteRepository && rcloneParameters(offsiteRepository)) {
    throw refuse(
      `${RCLONE_PARAMETERS_PROBLEM} (${names.repository}). Nothing was stored or changed.`,
      RCLONE_PARAMETERS_FIX,
    );
  }
  return {
    password: env.EDMS_RESTIC_PASSWORD || undefined,
    offsiteRepository,
    offsiteEnv,
  };
}

/** The off-host credentials a command stores on the host: the append-only ones `edms:backup.offsite` holds. */
const STORED_OFFSITE = { repository: "EDMS_OFFSITE_REPOSITORY", env: "EDMS_OFFSITE_ENV" } as const;

/**
 * The variables of the off-host credentials that may delete (`backups prune --offsite`, `backups forget
 * --offsite`): names of their own, so no other command run with them in its environment stores them on the
 * host as if they were its append-only ones.
 */
export const DELETE_OFFSITE = {
  repository: "EDMS_OFFSITE_DELETE_REPOSITORY",
  env: "EDMS_OFFSITE_DELETE_ENV",
} as const;

let stored: Promise<void> | undefined;

/**
 * Writes the keys given in the environment to the host (once per process: concurrent readers share the one
 * write). A password that does not open an existing repository is refused, so a wrong secret can never replace
 * the right key.
 */
export function storeKeysFromEnv(
  settings: Settings,
  options: { readonly dropOffsite?: boolean } = {},
): Promise<void> {
  if (!stored) {
    // Nothing written (no keys given, no volume yet) or a refused or failed write: the next caller tries again.
    const writing = writeKeysFromEnv(settings, options).then(
      (written) => {
        stored = written ? stored : undefined;
      },
      (err: unknown) => {
        stored = undefined;
        throw err;
      },
    );
    stored = writing;
  }
  return stored;
}

/**
 * Stores the keys a tar on stdin holds. Each process unpacks into a folder of its own and checks and moves
 * under a lock of the keys folder: a concurrent run can neither remove what this one checked nor slip an
 * unchecked key into its place.
 */
const STORE_KEYS_SCRIPT = `
umask 077
mkdir -p ${KEYS_DIR}
incoming=$(mktemp -d ${KEYS_DIR}/.incoming.XXXXXX)
trap 'rm -rf "$incoming"' EXIT
tar -x -o -C "$incoming"
exec 9>${KEYS_DIR}/.lock
flock 9
find ${KEYS_DIR} -maxdepth 1 -name '.incoming*' ! -path "$incoming" -mmin +10 -exec rm -rf {} +
# A file equal to the one stored is left as it is: nothing to prove, write or sync, and the fast key's proof,
# which names the password file's inode, stands (fastKey.ts). A different one is a new file.
changed=
put() { cmp -s "$1" "$2" || { mv "$1" "$2"; changed=1; }; }
if [ -f "$incoming/${KEY_FILES.password}" ] && ! cmp -s "$incoming/${KEY_FILES.password}" ${PASSWORD_FILE}; then
  if [ -f ${REPOSITORY}/config ] && ! restic --no-cache --no-lock -r ${REPOSITORY} --password-file "$incoming/${KEY_FILES.password}" ${KEY_HINT} cat config >/dev/null 2>&1; then
    echo __wrongkey__; exit 0
  fi
  put "$incoming/${KEY_FILES.password}" ${PASSWORD_FILE}
fi
if [ -f "$incoming/${KEY_FILES.offsiteRepository}" ]; then
  put "$incoming/${KEY_FILES.offsiteRepository}" ${OFFSITE_REPOSITORY_FILE}
  put "$incoming/${KEY_FILES.offsiteEnv}" ${OFFSITE_ENV_FILE}
elif [ "$1" = drop-offsite ] && { [ -e ${OFFSITE_REPOSITORY_FILE} ] || [ -e ${OFFSITE_ENV_FILE} ]; }; then
  rm -f ${OFFSITE_REPOSITORY_FILE} ${OFFSITE_ENV_FILE}; changed=1
fi
[ -z "$changed" ] || sync`;

/** True once the keys were written. */
async function writeKeysFromEnv(
  settings: Settings,
  options: { readonly dropOffsite?: boolean },
): Promise<boolean> {
  const keys = keysFromEnv();
  if (!keys.password && !keys.offsiteRepository && !options.dropOffsite) {
    return false;
  }
  // `docker run -v` would create a missing volume without the program's labels; the caller reports it.
  if (!(await volumeExists(settings.names.backupsVolume))) {
    return false;
  }
  const entries: TarEntry[] = [];
  if (keys.password) {
    entries.push({ name: KEY_FILES.password, content: keys.password, mode: 0o600 });
  }
  if (keys.offsiteRepository) {
    entries.push({
      name: KEY_FILES.offsiteRepository,
      content: keys.offsiteRepository,
      mode: 0o600,
    });
    const lines = Object.entries(keys.offsiteEnv ?? {}).map(([k, v]) => envFileLine(k, v));
    entries.push({ name: KEY_FILES.offsiteEnv, content: lines.join("\n") + "\n", mode: 0o600 });
  }

  const result = await backupToolbox(settings, STORE_KEYS_SCRIPT, {
    writable: true,
    input: await tarball(entries),
    args: [options.dropOffsite && !keys.offsiteRepository ? "drop-offsite" : "keep"],
  });
  if (result.stdout.includes("__wrongkey__")) {
    throw refuse(
      `EDMS_RESTIC_PASSWORD does not open the restic repository in ${settings.names.backupsVolume}: it belongs to another stack or an older key.`,
      `Take it from this stack: \`pulumi stack output backupPassword --show-secrets --stack ${settings.stack}\`. Nothing was changed.`,
    );
  }
  return true;
}

/** The error for a host that lacks the repository key (e.g. a new host before `pulumi up`). */
export function requireKeys(settings: Settings, offsite: boolean): never {
  const what = offsite ? "off-host repository credentials" : "backup repository key";
  throw refuse(
    `The ${what} of stack ${settings.stack} are not on its Docker host (${settings.names.backupsVolume}/.keys).`,
    `Run \`pulumi up --stack ${settings.stack}\` (its backupInit hook stores them), or pass them to this command: ` +
      `EDMS_RESTIC_PASSWORD="$(pulumi stack output backupPassword --show-secrets --stack ${settings.stack})"` +
      (offsite
        ? " and EDMS_OFFSITE_REPOSITORY / EDMS_OFFSITE_ENV (from `edms:backup.offsite`)"
        : "") +
      ". Nothing was changed.",
  );
}
