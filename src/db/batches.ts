/**
 * Runs `statement` (one bounded delete: at most `batch` rows) again while it deletes a full batch, at most
 * `maxStatements` times: a backlog (a first run on an old database) drains over several runs instead of one long
 * one. Returns the rows deleted in all.
 */
export async function deleteInBatches(statement: () => Promise<number>, batch: number, maxStatements: number): Promise<number> {
  let deleted = 0;
  for (let run = 0; run < maxStatements; run++) {
    const count = await statement();
    deleted += count;
    if (count < batch) break;
  }
  return deleted;
}
