export declare const MALLOC_TUNING: Record<string, string>;
export declare function tunedEnvironment(
  env?: Record<string, string | undefined>,
  platform?: string,
): Record<string, string | undefined> | undefined;
export declare function relaunchWithMallocTuning(): void;
