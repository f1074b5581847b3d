/**
 * Puts the fast key (resticKey.ts) into the stack's local repository once, under the session's lock: read the
 * password and the master key (one calibrated key derivation, the last), seal the new key, prove it with restic
 * on a copy of the repository that holds only that key and the config, then move it into keys/ and name it in
 * the hint every later restic reads (RESTIC_PRELUDE). A failure anywhere leaves the repository as it was, and
 * restic derives its calibrated key as before: it is said, and fails nothing.
 */
import { localSocket } from "../engine/engineApi";
import { engineless } from "../engine/engineless";
import { OpsSession } from "../engine/session";
import { parseJsonOrNull } from "../core/json";
import { lastLine, progress, warn } from "../core/log";
import { BACKUPS_DIR, LAYOUT, SCRATCH } from "./layout";
import { KEYS_DIR, PASSWORD_FILE, REPOSITORY } from "./restic";
import { fastKeyFile } from "./resticKey";
import { z } from "zod";

/**
 * restic opens the copy of the repository in $dir, which holds the config and one key, with the stored
 * password: its decryption and MAC of the config prove that key's master key. Both scripts below prove a key so.
 */
const OPENS_ALONE = `restic --no-cache --no-lock -r "$dir" --password-file ${PASSWORD_FILE} cat config >/dev/null`;

/**
 * The local repository's state: `nokey` (no password on the host), `missing` (no repository), `fast` (the hint
 * names a key that opens it with the password stored now: restic proves it on a copy holding only that key and
 * the config, one cheap key derivation, recorded in LAYOUT.keyProved with the password file's inode, size and
 * time, so that later runs start no restic until another password file or key is in use), `slow` (no hint, its
 * key gone, or restic says the stored password does not open it: a rotated-out password's key, and the new
 * password gets a fast key of its own) or `unknown` (the check itself failed, e.g. a full disk: nothing is
 * added, so no key piles up). $1: a scratch folder. EKEY is RESTIC_PRELUDE's.
 */
export const REPOSITORY_STATE = `
[ -f ${PASSWORD_FILE} ] || { echo nokey; exit 0; }
[ -f ${REPOSITORY}/config ] || { echo missing; exit 0; }
[ -n "$EKEY" ] && [ -f ${REPOSITORY}/keys/"$EKEY" ] || { echo slow; exit 0; }
# This key was proved with the password file there now (a stored password is a new file: keys.ts): no restic.
stored() { stat -c '%i %s %Y' ${PASSWORD_FILE}; }
[ "$(cat ${LAYOUT.keyProved} 2>/dev/null)" != "$EKEY $(stored)" ] || { echo fast; exit 0; }
dir=$1; rm -rf "$dir"; trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/keys" && cp ${REPOSITORY}/config "$dir/" && cp ${REPOSITORY}/keys/"$EKEY" "$dir/keys/" || { echo unknown; exit 0; }
# Under the keys folder's lock (keys.ts stores a password under it): the password file restic reads is the
# one the proof names. \`command\`: a lock that cannot be opened is \`unknown\`, not the end of the shell.
command exec 9>>${KEYS_DIR}/.lock && flock 9 && file=$(stored) || { echo unknown; exit 0; }
code=0; ${OPENS_ALONE} 2>&1 || code=$?
# 12: restic's exit code for a password that opens no key.
case $code in
  0) printf '%s\n' "$EKEY $file" > ${LAYOUT.keyProved} || true; echo fast ;;
  12) echo slow ;;
  *) echo unknown ;;
esac`;

/**
 * $1 the key's id, $2 the scratch folder, stdin the key file. Both files are on disk (an fsync of each, not a
 * sync of every file system, which waits on whatever else the host is writing) before either is renamed into
 * place, then their folders are. The hint goes first: a run killed between the two leaves a hint naming no
 * key (the next backup command adds one), never a key no hint names. restic gives up its key search at a key
 * file it cannot read, so a key file must never be seen half written.
 */
export const INSTALL_SCRIPT = `
id=$1; dir=$2
rm -rf "$dir"; mkdir -p "$dir/keys"
trap 'rm -rf "$dir"' EXIT
cat > "$dir/keys/$id"
cp ${REPOSITORY}/config "$dir/config"
# Only that key is there to open: restic decrypts and authenticates the config with the master key it holds.
${OPENS_ALONE}
chmod "$(stat -c %a ${REPOSITORY}/config)" "$dir/keys/$id"
printf '%s\n' "$id" > "$dir/hint"
sync "$dir/keys/$id" "$dir/hint"
mv "$dir/hint" ${LAYOUT.keyHint}
mv "$dir/keys/$id" ${REPOSITORY}/keys/"$id"
sync ${REPOSITORY}/keys ${BACKUPS_DIR}`;

/** What `restic cat masterkey` prints; only its shape is checked here, restic proves the rest. */
const MasterKeySchema = z.object({
  mac: z.object({ k: z.string().min(1), r: z.string().min(1) }),
  encrypt: z.string().min(1),
});

/**
 * Adds a fast key to a repository whose REPOSITORY_STATE is `slow`, when this process runs on the Docker host
 * (the scheduler, or edms-ops given the host's own engine socket). Sealing the key needs the master key here,
 * which, unlike the password, no rotation changes: it is never fetched over ssh:// or tcp:// to an operator's
 * machine. A stack run only from afar gets its fast key from its scheduler's first backup.
 */
export async function addFastKey(session: OpsSession, state: string): Promise<void> {
  const said = (why: string) =>
    warn(
      `the restic repository keeps only its calibrated key (${why}): each restic start derives it, ~0.5 s of CPU`,
    );
  if (state === "unknown") {
    said("its fast key could not be checked; nothing added");
    return;
  }
  if (!engineless() && localSocket() === undefined) {
    return;
  }
  // The password and the master key stay in this process' memory: never printed, never in an error.
  const read = await session.exec(
    `cat ${PASSWORD_FILE}; printf '\\000'; lrestic cat masterkey`,
    [],
    {
      allowFailure: true,
    },
  );
  const split = read.stdout.indexOf("\0");
  const master = read.stdout.slice(split + 1);
  if (read.code !== 0 || split < 0 || !parseJsonOrNull(master, MasterKeySchema)) {
    said(`its master key could not be read: ${lastLine(read.stderr) || `exit ${read.code}`}`);
    return;
  }
  progress("adding a key with scrypt's default cost to the restic repository (resticKey.ts)");
  // restic reads a password file without its surrounding white space.
  const key = fastKeyFile(
    Buffer.from(read.stdout.slice(0, split).trim()),
    Buffer.from(master),
    new Date(),
  );
  const installed = await session.exec(INSTALL_SCRIPT, [key.id, SCRATCH.keyCheck(process.pid)], {
    input: key.content,
    allowFailure: true,
  });
  if (installed.code !== 0) {
    said(
      `restic did not open the new key: ${lastLine(installed.stderr) || `exit ${installed.code}`}`,
    );
  }
}
