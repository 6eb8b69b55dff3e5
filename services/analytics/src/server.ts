import { runService } from '@pagestream/core'
import { role } from './app.js'

await runService(role)
