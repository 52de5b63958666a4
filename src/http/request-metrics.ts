/**
 * `http_request_duration_seconds` (histogram) and `http_requests_total` (counter) by method, route and status, kept in
 * plain counters keyed by one string. prom-client's own Histogram and Counter validate and hash their labels on every
 * observation, a measurable share of a fast route's CPU (BENCHMARKS.md); these are only read when scraped, through
 * the `get()` that prom-client's Registry asks any registered metric for.
 */

type Labels = { method: string; route: string; status_code: string };

interface Series {
  labels: Labels;
  requests: number;
  /** Observations per bucket (not cumulative); the last slot is beyond the largest bound (+Inf). */
  buckets: number[];
  sum: number;
  count: number;
}

export interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

/** What prom-client's Registry reads from a metric when it renders the exposition text. */
export interface CollectedMetric {
  name: string;
  help: string;
  type: 'histogram' | 'counter';
  values: MetricValue[];
  aggregator: 'sum';
}

export class RequestMetrics {
  private readonly series = new Map<string, Series>();

  constructor(private readonly bounds: readonly number[]) {}

  /** One answered request; `seconds` undefined counts it without timing it (a live stream's length is no latency). */
  record(method: string, route: string, statusCode: number, seconds: number | undefined): void {
    const key = `${method} ${statusCode} ${route}`;
    let series = this.series.get(key);
    if (!series) {
      series = { labels: { method, route, status_code: String(statusCode) }, requests: 0, buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
      this.series.set(key, series);
    }
    series.requests++;
    if (seconds === undefined) return;
    let slot = 0;
    while (slot < this.bounds.length && seconds > this.bounds[slot]!) slot++;
    series.buckets[slot]!++;
    series.sum += seconds;
    series.count++;
  }

  /** The duration histogram as prom-client renders it: cumulative `_bucket{le}` series, then `_sum` and `_count`. */
  durationHistogram(name: string, help: string): CollectedMetric {
    const values: MetricValue[] = [];
    for (const series of this.series.values()) {
      if (series.count === 0) continue;
      let cumulative = 0;
      series.buckets.forEach((observed, slot) => {
        cumulative += observed;
        const le = slot < this.bounds.length ? this.bounds[slot]! : '+Inf';
        values.push({ metricName: `${name}_bucket`, labels: { le, ...series.labels }, value: cumulative });
      });
      values.push({ metricName: `${name}_sum`, labels: series.labels, value: series.sum });
      values.push({ metricName: `${name}_count`, labels: series.labels, value: series.count });
    }
    return { name, help, type: 'histogram', values, aggregator: 'sum' };
  }

  requestCounter(name: string, help: string): CollectedMetric {
    const values = [...this.series.values()].map((series) => ({ labels: series.labels, value: series.requests }));
    return { name, help, type: 'counter', values, aggregator: 'sum' };
  }
}
