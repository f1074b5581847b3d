/**
 * The validated settings as the rest of the code sees them: the schema's output (so a key added there is a
 * field here), read-only, plus what validation derives from the stack rather than from config.
 */
import { z } from "zod";
import { ResourceNames } from "./names";
import { SettingsSchema } from "./schema";

/** Deeply read-only: Settings are shared by every component and command and never changed. */
export type Frozen<T> = T extends readonly (infer U)[]
  ? readonly Frozen<U>[]
  : T extends object
    ? { readonly [K in keyof T]: Frozen<T[K]> }
    : T;

/** The `edms:*` keys after validation and defaults, exactly the schema's keys. */
export type ConfiguredSettings = Frozen<z.output<SettingsSchema>>;

/** Not config keys: where the settings are applied, and the names derived from them. */
export interface DerivedSettings {
  readonly stack: string;
  /** `docker:host`; undefined means the local socket (or `DOCKER_HOST`). */
  readonly dockerHost?: string;
  readonly names: ResourceNames;
}

export type Settings = DerivedSettings & ConfiguredSettings;

export type BackupSettings = Settings["backup"];
export type OffsiteSettings = NonNullable<BackupSettings["offsite"]>;
export type BootstrapSettings = Settings["bootstrap"];
export type ProxySettings = Settings["proxy"];
export type AlertSettings = Settings["alerts"];
export type ProxyTlsSettings = NonNullable<ProxySettings["tls"]>;

/** Config values as read from the stack, keys without the `edms:` namespace. Values are untrusted. */
export type RawConfig = Record<string, unknown>;
