import { type Static, Type } from '@sinclair/typebox'

/** An error whose status, message and headers are meant for the client. */
export class HttpError extends Error {
  constructor (
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {}
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

/** Every 4xx and 5xx body of every role: the status, its reason phrase and what went wrong. */
export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String({ description: 'the reason phrase of the status' }),
  message: Type.String({ description: 'what was wrong, naming the field or setting; 5xx details stay in the log' }),
})
export type ErrorBody = Static<typeof ErrorResponse>
