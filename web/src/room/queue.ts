// Runs async tasks strictly one after another, in the order they were pushed.
// A failing task is reported and does not stop the ones after it.
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private readonly onError: (error: unknown, label: string) => void;

  constructor(onError: (error: unknown, label: string) => void) {
    this.onError = onError;
  }

  push(label: string, task: () => Promise<void> | void): Promise<void> {
    const run = this.tail.then(task).catch((e: unknown) => this.onError(e, label));
    this.tail = run;
    return run;
  }
}
