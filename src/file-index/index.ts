// The format-neutral file index: the model (model.ts) and its one builder (builder.ts).
export * from './model.js';
export * from './builder.js';
