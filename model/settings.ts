/**
 * The stack settings: schema, defaults, validation and the names derived from them, in model/config/ and
 * re-exported here so every `model/settings` import keeps working. No @pulumi import, so the program
 * (components/config.ts reads pulumi.Config and calls this), the edms-ops CLI (which reads
 * `Pulumi.<stack>.yaml` without the Pulumi CLI) and the tests apply exactly the same rules.
 */
export * from "./config/alerts";
export * from "./config/backup";
export * from "./config/database";
export * from "./config/media";
export * from "./config/environments";
export { durationMs, parseJsonish } from "./config/fields";
export * from "./config/names";
export * from "./config/schema";
export * from "./config/types";
export * from "./config/validate";
