// The `code` of a Node system error ('ENOENT', 'EPERM', ...), or undefined for anything else:
// one narrowing instead of a cast at every catch.
export function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
