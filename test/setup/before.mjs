import { brokerUp } from './broker.mjs'

brokerUp()
