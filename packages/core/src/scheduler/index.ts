export * from './start-scheduler.js';
export * from './scheduler-options.js';
export { collectJobMetrics } from './job-metrics.js';
export type { JobMetricsTaskOptions } from './job-metrics.js';
export { startPipeline, dueByStatus } from './pipeline.js';
export { nudge } from './nudge.js';
export type { Claimed, PipelineDefinition, PipelineHandle, PipelineOptions } from './pipeline.js';
export { reasonOfAgentState } from './job-running.js';
export * from './background-processing.js';
