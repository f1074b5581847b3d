/** What production demands of the servers off its host (an external database, a media bucket). */

/** Production reaches a database and a bucket off the host over verified TLS only. */
export function offHostTlsViolations(name: string, env: Map<string, string>): string[] {
  const found: string[] = [];
  const host = env.get("POSTGRES_HOST");
  if (host !== undefined && host !== "postgres" && env.get("PGSSLMODE") !== "verify-full") {
    found.push(
      `Container ${name} reaches the external database ${host} with PGSSLMODE=${env.get("PGSSLMODE") ?? "(unset)"}: production checks the server's certificate and name. Set \`edms:database.sslMode: verify-full\` and \`caCertificateFile\`.`,
    );
  }
  const endpoint = env.get("EDMS_S3_ENDPOINT");
  if (endpoint !== undefined && !endpoint.startsWith("https://")) {
    found.push(
      `Container ${name} sends documents to the bucket at ${endpoint} without TLS. Set an https:// \`edms:media.endpoint\`.`,
    );
  }
  return found;
}
