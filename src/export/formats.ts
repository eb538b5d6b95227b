// The image archive formats `export` writes: a module of its own, so the CLI's option parser
// can name them without loading the writers.
export const EXPORT_FORMATS = ['docker-archive', 'oci'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
